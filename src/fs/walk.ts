import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { notFoundOrDenied } from '../errors.js';
import type { PolicyEngine } from '../policy/engine.js';
import { uriFor } from '../policy/paths.js';
import type { Principal, Root, Target } from '../policy/types.js';

/** Who is looking: listings show exactly what this principal could read. */
export interface Viewer {
  readonly policy: PolicyEngine;
  readonly principal: Principal;
}

export interface Entry {
  readonly name: string;
  readonly root: Root;
  /** Root-relative path of the entry as listed (a link's own path, not its target's). */
  readonly relPath: string;
  readonly uri: string;
  readonly type: 'file' | 'directory' | 'other';
  readonly symlink: boolean;
  /** Where reads of this entry go (the canonical target for a link). */
  readonly target: Target;
}

export interface DetailedEntry {
  readonly name: string;
  readonly path: string;
  readonly uri: string;
  readonly type: 'file' | 'directory' | 'other';
  readonly size: number;
  readonly modified: string;
  readonly symlink?: true;
}

const byName = (a: Dirent, b: Dirent) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

/**
 * The visible children of a canonical directory, sorted by name. Excluded and unreadable entries
 * are dropped; a symlink is kept only when the policy would let this viewer read where it lands.
 */
export async function visibleChildren(viewer: Viewer, directory: Target): Promise<Entry[]> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(directory.absPath, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') throw notFoundOrDenied(directory.uri);
    throw error;
  }
  dirents.sort(byName);
  const { policy, principal } = viewer;
  const root = directory.root;
  const entries: Entry[] = [];
  for (const dirent of dirents) {
    const relPath = joinRel(directory.relPath, dirent.name);
    const symlink = dirent.isSymbolicLink();
    let target: Target;
    if (symlink) {
      // A link is shown as what it resolves to, and only if that is readable.
      if (policy.isExcluded(relPath)) continue;
      const decision = await policy.decide(principal, 'read', uriFor(root, relPath));
      if (!decision.allow || decision.target.kind === 'missing') continue;
      target = decision.target;
    } else {
      const kind = dirent.isDirectory() ? 'directory' : dirent.isFile() ? 'file' : 'other';
      if (!policy.isVisible(root, relPath, kind === 'directory' ? 'directory' : 'file')) continue;
      target = policy.targetFor(root, relPath, kind);
    }
    const { kind } = target;
    entries.push({
      name: dirent.name,
      root,
      relPath,
      uri: uriFor(root, relPath),
      type: kind === 'file' || kind === 'directory' ? kind : 'other',
      symlink,
      target,
    });
  }
  // A directory swapped for a link while we read it would have shown someone else's names.
  if ((await realpath(directory.absPath).catch(() => null)) !== directory.absPath)
    throw notFoundOrDenied(directory.uri);
  return entries;
}

export async function detail(entry: Entry): Promise<DetailedEntry> {
  const stats = await (entry.symlink ? stat(entry.target.absPath) : lstat(entry.target.absPath)).catch(() => null);
  return {
    name: entry.name,
    path: entry.relPath,
    uri: entry.uri,
    type: entry.type,
    size: stats && entry.type === 'file' ? stats.size : 0,
    modified: stats ? stats.mtime.toISOString() : new Date(0).toISOString(),
    ...(entry.symlink ? { symlink: true as const } : {}),
  };
}

/** Shared budget of one walk: how many entries it may visit, and whether it ran out. */
export class WalkBudget {
  visited = 0;
  exhausted = false;
  constructor(readonly maxEntries: number) {}

  spend(): boolean {
    if (this.visited >= this.maxEntries) {
      this.exhausted = true;
      return false;
    }
    this.visited += 1;
    return true;
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
  const after = options.after ? options.after.split('/') : undefined;
  const startDepth = start.relPath === '' ? 0 : start.relPath.split('/').length;
  yield* walkDirectory(viewer, start, 1, after, startDepth, options);
}

async function* walkDirectory(
  viewer: Viewer,
  directory: Target,
  depth: number,
  after: string[] | undefined,
  startDepth: number,
  options: WalkOptions,
): AsyncGenerator<Entry & { depth: number }> {
  options.signal?.throwIfAborted();
  let children: Entry[];
  try {
    children = await visibleChildren(viewer, directory);
  } catch (error) {
    // A directory that vanished mid-walk is simply no longer there.
    if ((error as { code?: string }).code === 'NOT_FOUND_OR_DENIED' && depth > 1) return;
    throw error;
  }
  const index = startDepth + depth - 1;
  for (const child of children) {
    let resumeInside: string[] | undefined;
    let yieldSelf = true;
    if (after) {
      const mark = after[index];
      if (mark !== undefined) {
        if (child.name < mark) continue;
        if (child.name === mark) {
          yieldSelf = false;
          resumeInside = index + 1 < after.length ? after : undefined;
        }
      }
    }
    if (yieldSelf) {
      if (!options.budget.spend()) return;
      yield { ...child, depth };
    }
    const descend =
      child.type === 'directory' && !child.symlink && (options.maxDepth === undefined || depth < options.maxDepth);
    if (descend) {
      yield* walkDirectory(viewer, child.target, depth + 1, resumeInside, startDepth, options);
      if (options.budget.exhausted) return;
    }
    // Past the resume point at this level: everything after it is new.
    after = undefined;
  }
}
