import { lstat, opendir } from 'node:fs/promises';
import { isMcpdError } from '../errors.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { Principal, Target } from '../policy/types.js';
import { pause } from '../slices.js';
import { type AnchoredDirectory, openAnchored, openChild } from './anchor.js';
import {
  type DirectoryListings,
  DirectoryTooLarge,
  entryAt,
  type ListedEntry,
  type OpenListing,
  type Snapshot,
} from './listing.js';
import type { NameIndex } from './nameIndex.js';
import { isRefusedHardLink, openVerified } from './open.js';
import { ReadAhead } from './readAhead.js';
import type { RegexPool } from './regex.js';
import type { StatPool } from './stats.js';

export type Entry = ListedEntry;

/** Who is looking: listings show exactly what this principal could read. */
export interface Viewer {
  readonly policy: PolicyEngine;
  readonly principal: Principal;
  readonly listings: DirectoryListings;
  /** The process's regex workers (grep). */
  readonly regexes: RegexPool;
  /** Name indexes searches scan instead of walking, when they are current. */
  readonly index?: NameIndex;
}

export interface DetailedEntry {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'other';
  readonly size: number;
  readonly modified: string;
  readonly symlink?: true;
}

/**
 * Size and modification time of one listed entry. A plain entry is stat'ed through the
 * directory's descriptor (the name can only be the one listed there); a link's target is opened
 * by its canonical path and proven, so no swap can make a listing show an outside file's size.
 */
export async function detail(listing: OpenListing, index: number): Promise<DetailedEntry> {
  const entry = listing.entry(index);
  const found = entry.symlink ? await targetStats(entry.target) : await lstat(listing.at(entry.name)).catch(() => null);
  // A second name of a file the root refuses is listed (its name is the root's own) but, like a
  // read of it, tells nothing of the file: its size and time could be a secret's.
  const stats = found && !isRefusedHardLink(found, entry.target) ? found : null;
  return {
    name: entry.name,
    type: entry.type,
    size: stats && entry.type === 'file' ? stats.size : 0,
    modified: stats ? stats.mtime.toISOString() : new Date(0).toISOString(),
    ...(entry.symlink ? { symlink: true as const } : {}),
  };
}

/** What a listing shows of an entry without stat'ing it. */
export interface ListedSummary {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'other';
  readonly symlink?: true;
}

/** Entries [start, end) of a snapshot of `directory` as names and kinds: no stat, no descriptor held. */
export async function summariesOf(
  policy: PolicyEngine,
  directory: Target,
  snapshot: Snapshot,
  start: number,
  end: number,
): Promise<ListedSummary[]> {
  const summaries: ListedSummary[] = [];
  for (let i = start; i < end; i++) {
    if (((i - start) & 1023) === 1023) {
      const turn = pause();
      if (turn) await turn;
    }
    const entry = entryAt(policy, directory, snapshot, i);
    summaries.push({
      name: entry.name,
      type: entry.type,
      ...(entry.symlink ? { symlink: true as const } : {}),
    });
  }
  return summaries;
}

/** Below this many plain entries, a page stats them here: a worker's round trip costs more than it saves. */
const STATS_IN_WORKER = 64;

/**
 * The details of entries [start, end) of a listing. The plain entries of a big page are stat'ed
 * by the stat workers, through the listing's held descriptor; symlinks (rare) are opened and
 * proven one by one, as `detail` does. The main thread only assembles the page, in the loop's
 * shared slice.
 */
export async function detailsOf(
  listing: OpenListing,
  start: number,
  end: number,
  stats: StatPool,
): Promise<DetailedEntry[]> {
  const entries = Array.from({ length: Math.max(0, end - start) }, (_, i) => listing.summary(start + i));
  const plain = entries.filter((entry) => !entry.symlink);
  if (plain.length < STATS_IN_WORKER) return Promise.all(entries.map((_, i) => detail(listing, start + i)));
  const found = await stats.stat(
    listing.at(),
    plain.map((entry) => entry.name),
  );
  const byName = new Map(plain.map((entry, i) => [entry.name, found[i]]));
  const details: DetailedEntry[] = [];
  for (const [i, entry] of entries.entries()) {
    if ((i & 255) === 0) {
      const turn = pause();
      if (turn) await turn;
    }
    if (entry.symlink) {
      details.push(await detail(listing, start + i));
      continue;
    }
    const stat = byName.get(entry.name);
    // A second name of a file the root refuses tells nothing of the file, like a read of it.
    const shown =
      stat && !isRefusedHardLink({ isFile: () => stat.isFile, nlink: stat.nlink }, listing.target) ? stat : undefined;
    details.push({
      name: entry.name,
      type: entry.type,
      size: shown && entry.type === 'file' ? shown.size : 0,
      modified: new Date(shown ? shown.mtimeMs : 0).toISOString(),
    });
  }
  return details;
}

async function targetStats(target: Target) {
  const handle = await openVerified(target).catch(() => null);
  if (!handle) return null;
  try {
    return await handle.stat();
  } finally {
    await handle.close();
  }
}

/** Shared budget of one walk: how many entries it may visit, and whether it ran out or skipped any. */
export class WalkBudget {
  visited = 0;
  exhausted = false;
  /** Directories left out for holding more entries than limits.maxDirectoryEntries. */
  skipped = 0;
  constructor(readonly maxEntries: number) {}

  spend(): boolean {
    if (this.visited >= this.maxEntries) {
      this.exhausted = true;
      return false;
    }
    this.visited += 1;
    return true;
  }

  /** Whether the walk saw less than everything. */
  get truncated(): boolean {
    return this.exhausted || this.skipped > 0;
  }
}

export interface WalkOptions {
  readonly budget: WalkBudget;
  readonly signal?: AbortSignal;
  /** Resume strictly after this root-relative path, in walk order (pre-order, names sorted). */
  readonly after?: string;
  /** Do not descend below this depth (the start directory's children are depth 1). */
  readonly maxDepth?: number;
}

/**
 * Pre-order walk of everything visible under `start`, names sorted at every level, so the order
 * is stable and a cursor (the last path seen) resumes it exactly. Symlinked directories are listed
 * but not entered: that is what keeps walks finite and inside the root.
 */
export async function* walk(
  viewer: Viewer,
  start: Target,
  options: WalkOptions,
): AsyncGenerator<Entry & { depth: number }> {
  const startDepth = start.relPath === '' ? 0 : start.relPath.split('/').length;
  const ahead = new ReadAhead(viewer.listings, viewer.policy, {
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    ...(options.after === undefined ? {} : { after: options.after }),
  });
  // One frame per directory being walked, deepest last: an explicit stack, not nested generators,
  // so an entry found ten levels down is handed over once, not through ten `yield*`s.
  const frames: Frame[] = [];
  try {
    const first = await enter(viewer, start, 1, options.after ? options.after.split('/') : undefined, options, ahead);
    if (first) frames.push(first);
    while (frames.length > 0) {
      const frame = frames.at(-1) as Frame;
      const { snapshot, depth } = frame;
      if (frame.next >= snapshot.names.length) {
        frames.pop();
        continue;
      }
      // A caller's pattern is tested on every name: the walk shares the loop's slice with all other work.
      const turn = pause();
      if (turn) await turn;
      options.signal?.throwIfAborted();
      const i = frame.next++;
      const name = snapshot.names[i] as string;
      let resumeInside: string[] | undefined;
      let yieldSelf = true;
      const after = frame.after;
      if (after) {
        const mark = after[startDepth + depth - 1];
        if (mark !== undefined) {
          if (name < mark) continue;
          if (name === mark) {
            yieldSelf = false;
            resumeInside = startDepth + depth < after.length ? after : undefined;
          }
        }
        // Past the resume point at this level: everything after it is new.
        frame.after = undefined;
      }
      const child = entryAt(viewer.policy, frame.directory, snapshot, i, depth);
      if (yieldSelf) {
        if (!options.budget.spend()) return;
        yield child;
      }
      const descend =
        child.type === 'directory' && !child.symlink && (options.maxDepth === undefined || depth < options.maxDepth);
      if (descend) {
        const inner = await enter(viewer, child.target, depth + 1, resumeInside, options, ahead);
        if (inner) frames.push(inner);
      }
    }
  } finally {
    ahead.close();
  }
}

interface Frame {
  readonly directory: Target;
  readonly snapshot: Awaited<ReturnType<DirectoryListings['snapshot']>>;
  /** Depth of this directory's entries (the start's are 1). */
  readonly depth: number;
  /** Index of the next entry to visit. */
  next: number;
  /** The resume path while this directory is on it, until its mark is passed. */
  after: string[] | undefined;
}

/** A directory's frame, or undefined when it is skipped (too large, or gone mid-walk). */
async function enter(
  viewer: Viewer,
  directory: Target,
  depth: number,
  after: string[] | undefined,
  options: WalkOptions,
  ahead: ReadAhead,
): Promise<Frame | undefined> {
  options.signal?.throwIfAborted();
  try {
    const readAhead = ahead.take(directory);
    const snapshot = await (readAhead ?? viewer.listings.snapshot(directory));
    // Read here, not ahead: its subdirectories are not queued yet.
    if (!readAhead) ahead.seed(directory, snapshot, depth);
    return { directory, snapshot, depth, next: 0, after };
  } catch (error) {
    if (depth > 1 && error instanceof DirectoryTooLarge) {
      options.budget.skipped += 1;
      return undefined;
    }
    // A directory that vanished (or was swapped) mid-walk is simply no longer there.
    if (depth > 1 && isMcpdError(error) && error.code === 'NOT_FOUND_OR_DENIED') return undefined;
    throw error;
  }
}

/** Whether a directory has any visible entry (a tree cut by depth says so); false when it cannot be read. */
export async function hasVisibleEntries(viewer: Viewer, directory: Target): Promise<boolean> {
  return viewer.listings.hasVisible(directory).catch(() => false);
}

/** One entry found by everythingUnder: its path below the start, and what it is itself (links not followed). */
export interface RawEntry {
  readonly relPath: string;
  readonly kind: 'file' | 'directory' | 'symlink' | 'other';
}

/**
 * Everything beneath a directory, hidden entries included: what a move of the directory would
 * carry. Read through descriptors from the decided directory down, never entering a symlink.
 */
export async function* everythingUnder(start: Target, signal?: AbortSignal): AsyncGenerator<RawEntry> {
  const top = await openAnchored(start.absPath, start.display);
  const walkFrom = async function* (directory: AnchoredDirectory, prefix: string): AsyncGenerator<RawEntry> {
    const names: { name: string; kind: RawEntry['kind'] }[] = [];
    for await (const dirent of await opendir(directory.at(), { bufferSize: 256 })) {
      const kind = dirent.isSymbolicLink()
        ? 'symlink'
        : dirent.isDirectory()
          ? 'directory'
          : dirent.isFile()
            ? 'file'
            : 'other';
      names.push({ name: dirent.name, kind });
    }
    for (const { name, kind } of names) {
      const turn = pause();
      if (turn) await turn;
      signal?.throwIfAborted();
      const relPath = prefix === '' ? name : `${prefix}/${name}`;
      yield { relPath, kind };
      if (kind !== 'directory') continue;
      const child = await openChild(directory, name, start.display);
      try {
        yield* walkFrom(child, relPath);
      } finally {
        await child.close();
      }
    }
  };
  try {
    yield* walkFrom(top, '');
  } finally {
    await top.close();
  }
}
