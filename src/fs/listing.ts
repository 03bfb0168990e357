import { opendir } from 'node:fs/promises';
import { McpdError, notFoundOrDenied } from '../errors.js';
import type { PolicyEngine } from '../policy/engine.js';
import { uriFor } from '../policy/paths.js';
import { LOCAL, type Root, type Target } from '../policy/types.js';
import { pause, sortInSlices } from '../slices.js';
import { type AnchoredDirectory, openAnchored } from './anchor.js';
import { type DirectoryReaders, RAW_DIRECTORY, RAW_FILE, RAW_SYMLINK, type RawDirectory } from './readers.js';

/** What an entry is, packed in a byte: the kind, and whether the entry itself is a symlink. */
const KIND_FILE = 0;
const KIND_DIRECTORY = 1;
const KIND_OTHER = 2;
export const SYMLINK_BIT = 4;
export const KINDS = ['file', 'directory', 'other'] as const;

export type EntryType = (typeof KINDS)[number];

/**
 * The visible entries of one directory, sorted by name: what every listing, page, tree and walk
 * reads. Names and kinds sit in two parallel arrays, not one object per entry, so a snapshot of
 * 100,000 entries costs a few megabytes. Visibility here does not depend on who asks: grants are
 * per root (judged when the directory itself is decided), and a link is shown only when it
 * resolves inside its own root to something readable.
 */
export interface Snapshot {
  readonly names: readonly string[];
  readonly flags: Uint8Array;
  /** The canonical root-relative target of each symlink entry, by index. */
  readonly links: ReadonlyMap<number, string>;
  /** The directory's identity and change time when it was read (device, inode, mtime, ctime). */
  readonly key: string;
}

export interface ListingOptions {
  /** A directory with more entries than this is refused (listing) or skipped (walks). */
  readonly maxEntries: number;
  /** Entries all cached snapshots may hold together; the least recently used go first. */
  readonly maxCachedEntries: number;
  /** How long a snapshot with symlinks is trusted: a link's target can change without its directory changing. */
  readonly linkTtlMs: number;
  /** Workers that read many directories per message (walks read ahead with them); absent, walks read one at a time. */
  readonly readers?: DirectoryReaders;
}

interface Cached {
  readonly snapshot: Snapshot;
  readonly expiresAt: number;
  /** The directory's canonical path, so that a read can say which snapshot it already holds. */
  readonly path: string;
}

/** Whether entry `index` of a snapshot is a directory itself (not a link to one): what a walk enters. */
export function isPlainDirectory(snapshot: Snapshot, index: number): boolean {
  return (snapshot.flags[index] as number) === KIND_DIRECTORY;
}

/** errno codes (and the readers' MOVED) that mean a directory is not there for this caller. */
const GONE = new Set(['MOVED', 'ENOENT', 'ENOTDIR', 'ELOOP', 'EACCES', 'EPERM']);

/** The coarsest file-system timestamp mcpd expects (FAT and some network file systems: 2 s). */
export const RACY_WINDOW_MS = 2000;

/** Error for a directory above `maxEntries`: the listing refuses it; a walk skips it and says truncated. */
export class DirectoryTooLarge extends McpdError {}

/**
 * Snapshots of directories, keyed by identity and change time (device, inode, mtime, ctime), so a
 * directory that changed is read again and one that did not is served from memory. Each read is
 * of a directory held by descriptor and proven to be the canonical one (the names can only come
 * from inside the root), streamed with opendir, and shared: concurrent callers of the same
 * directory wait for one read. Memory is bounded by `maxCachedEntries` whatever the directories
 * hold, and each call holds only its page.
 */
export class DirectoryListings {
  private readonly cache = new Map<string, Cached>();
  private readonly building = new Map<string, Promise<Snapshot>>();
  /** Path to key of the snapshot cached for it. */
  private readonly keyOfPath = new Map<string, string>();
  private cachedEntries = 0;
  /** Directories read whole from disk so far (a cache hit reads none): what tests and metrics look at. */
  reads = 0;
  /** Directories looked into only for a first visible entry. */
  peeks = 0;

  constructor(
    private readonly policy: PolicyEngine,
    private readonly options: ListingOptions,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Opens the directory `target`, anchored, and returns its snapshot with the directory still
   * held, so that a caller can stat the entries of a page through the same descriptor.
   */
  async open(target: Target): Promise<OpenListing> {
    const directory = await openAnchored(target.absPath, target.display);
    try {
      const snapshot = await this.snapshotOf(directory, target);
      return new OpenListing(directory, target, snapshot, this.policy);
    } catch (error) {
      await directory.close();
      throw error;
    }
  }

  /**
   * The snapshot alone (for walks and listings without stats). With reader workers, one message
   * to a worker opens, proves, checks and reads the directory; without, it is read here.
   */
  async snapshot(target: Target): Promise<Snapshot> {
    if (this.options.readers) return this.readMany([target])[0] as Promise<Snapshot>;
    const directory = await openAnchored(target.absPath, target.display);
    try {
      return await this.snapshotOf(directory, target);
    } finally {
      await directory.close();
    }
  }

  get size(): number {
    return this.cachedEntries;
  }

  /**
   * Whether a directory has any visible entry, reading no further than the first one (a cached
   * snapshot answers at once): what a tree cut by depth needs, without paying for a whole
   * directory it will not show.
   */
  async hasVisible(target: Target): Promise<boolean> {
    const directory = await openAnchored(target.absPath, target.display);
    try {
      const stats = await directory.handle.stat({ bigint: true });
      const cached = this.cache.get(`${stats.dev}:${stats.ino}:${stats.mtimeNs}:${stats.ctimeNs}`);
      if (cached && cached.expiresAt > this.now()) return cached.snapshot.names.length > 0;
      this.peeks += 1;
      const handle = await opendir(directory.at(), { bufferSize: 32 });
      try {
        for await (const dirent of handle) {
          const relPath = target.relPath === '' ? dirent.name : `${target.relPath}/${dirent.name}`;
          if (dirent.isSymbolicLink()) {
            if (await this.resolveLink(target.root, relPath)) return true;
            continue;
          }
          if (this.policy.isVisible(target.root, relPath, dirent.isDirectory() ? 'directory' : 'file')) return true;
        }
        return false;
      } finally {
        await handle.close().catch(() => {});
      }
    } finally {
      await directory.close();
    }
  }

  private async snapshotOf(directory: AnchoredDirectory, target: Target): Promise<Snapshot> {
    const stats = await directory.handle.stat({ bigint: true });
    const key = `${stats.dev}:${stats.ino}:${stats.mtimeNs}:${stats.ctimeNs}`;
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > this.now()) {
      // Most recently used last: Map order is the eviction order.
      this.cache.delete(key);
      this.cache.set(key, cached);
      return cached.snapshot;
    }
    const pending = this.building.get(key);
    if (pending) return pending;
    const build = this.read(directory, target, key).finally(() => this.building.delete(key));
    this.building.set(key, build);
    const snapshot = await build;
    // A directory changed within the last tick of its file system's clock may change again under the
    // same mtime (the "racy git" problem): such a snapshot serves the callers waiting for it, and is
    // not kept.
    if (Number(stats.mtimeMs) + RACY_WINDOW_MS <= this.now()) this.remember(key, snapshot, target.absPath);
    return snapshot;
  }

  /**
   * Snapshots of many directories read in one message to a reader worker (one promise each, in
   * order): what a walk reads ahead with. Same proofs, same cache as `snapshot`; a directory whose
   * cached snapshot is still current is not read again. Without readers, each is read on its own.
   */
  readMany(targets: readonly Target[]): Promise<Snapshot>[] {
    const readers = this.options.readers;
    if (!readers) return targets.map((target) => this.snapshot(target));
    const requests = targets.map((target) => {
      // Only a snapshot still fit to serve may be vouched for (one with links expires).
      const known = this.keyOfPath.get(target.absPath);
      const usable = known !== undefined && (this.cache.get(known)?.expiresAt ?? 0) > this.now();
      return usable ? { path: target.absPath, known } : { path: target.absPath };
    });
    const replies = readers.read(requests, this.options.maxEntries);
    return targets.map((target, i) => replies.then((all) => this.fromRaw(target, all[i] as RawDirectory)));
  }

  private async fromRaw(target: Target, raw: RawDirectory): Promise<Snapshot> {
    if ('error' in raw) {
      if (GONE.has(raw.error)) throw notFoundOrDenied(target.display);
      throw new McpdError('INTERNAL', `reading ${target.display} failed: ${raw.error}`);
    }
    if ('tooLarge' in raw) throw tooLarge(target.display, this.options.maxEntries);
    if ('unchanged' in raw) {
      const cached = this.cache.get(raw.key);
      if (cached && cached.expiresAt > this.now()) {
        this.cache.delete(raw.key);
        this.cache.set(raw.key, cached);
        return cached.snapshot;
      }
      // Evicted or expired since the request left: forget it, and read the directory afresh.
      const stale = this.cache.get(raw.key);
      if (stale) this.forget(raw.key, stale);
      if (this.keyOfPath.get(target.absPath) === raw.key) this.keyOfPath.delete(target.absPath);
      const readers = this.options.readers as DirectoryReaders;
      const [fresh] = await readers.read([{ path: target.absPath }], this.options.maxEntries);
      return this.fromRaw(target, fresh as RawDirectory);
    }
    this.reads += 1;
    const found: { name: string; flag: number; link?: string }[] = [];
    for (let i = 0; i < raw.names.length; i++) {
      const turn = pause();
      if (turn) await turn;
      const name = raw.names[i] as string;
      const kind = raw.kinds[i] as number;
      const relPath = target.relPath === '' ? name : `${target.relPath}/${name}`;
      if (kind === RAW_SYMLINK) {
        const link = await this.resolveLink(target.root, relPath);
        if (link) found.push({ name, flag: link.flag | SYMLINK_BIT, link: link.relPath });
        continue;
      }
      const flag = kind === RAW_DIRECTORY ? KIND_DIRECTORY : kind === RAW_FILE ? KIND_FILE : KIND_OTHER;
      if (!this.policy.isVisibleIn(target.root, relPath, flag === KIND_DIRECTORY ? 'directory' : 'file')) continue;
      found.push({ name, flag });
    }
    // Already sorted by the worker; filtering keeps the order.
    const snapshot = toSnapshot(found, raw.key);
    if (raw.mtimeMs + RACY_WINDOW_MS <= this.now()) this.remember(raw.key, snapshot, target.absPath);
    return snapshot;
  }

  private remember(key: string, snapshot: Snapshot, path: string): void {
    const size = snapshot.names.length;
    if (size > this.options.maxCachedEntries || this.options.maxCachedEntries === 0) return;
    const previous = this.cache.get(key);
    if (previous) this.forget(key, previous);
    const expiresAt = snapshot.links.size > 0 ? this.now() + this.options.linkTtlMs : Number.POSITIVE_INFINITY;
    this.cache.set(key, { snapshot, expiresAt, path });
    this.keyOfPath.set(path, key);
    this.cachedEntries += size;
    for (const [oldKey, old] of this.cache) {
      if (this.cachedEntries <= this.options.maxCachedEntries) break;
      this.forget(oldKey, old);
    }
  }

  private forget(key: string, cached: Cached): void {
    this.cache.delete(key);
    this.cachedEntries -= cached.snapshot.names.length;
    if (this.keyOfPath.get(cached.path) === key) this.keyOfPath.delete(cached.path);
  }

  private async read(directory: AnchoredDirectory, target: Target, key: string): Promise<Snapshot> {
    this.reads += 1;
    const { root } = target;
    const found: { name: string; flag: number; link?: string }[] = [];
    let seen = 0;
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(directory.at(), { bufferSize: 256 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined && GONE.has(code)) throw notFoundOrDenied(target.display);
      throw error;
    }
    for await (const dirent of handle) {
      seen += 1;
      // Every name is judged by the policy: the read shares the loop's slice with all other work.
      const turn = pause();
      if (turn) await turn;
      if (seen > this.options.maxEntries) {
        await handle.close().catch(() => {});
        throw tooLarge(target.display, this.options.maxEntries);
      }
      const relPath = target.relPath === '' ? dirent.name : `${target.relPath}/${dirent.name}`;
      if (dirent.isSymbolicLink()) {
        const link = await this.resolveLink(root, relPath);
        if (link) found.push({ name: dirent.name, flag: link.flag | SYMLINK_BIT, link: link.relPath });
        continue;
      }
      const flag = dirent.isDirectory() ? KIND_DIRECTORY : dirent.isFile() ? KIND_FILE : KIND_OTHER;
      if (!this.policy.isVisibleIn(root, relPath, flag === KIND_DIRECTORY ? 'directory' : 'file')) continue;
      found.push({ name: dirent.name, flag });
    }
    // Sorting 200,000 names at once holds the loop for a fifth of a second: in slices.
    return toSnapshot(await sortInSlices(found, (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), key);
  }

  /** A link is shown as what it resolves to, and only when that is readable inside its own root. */
  /**
   * What the link at `relPath` is shown as: the kind it resolves to (with the link bit) and its
   * canonical root-relative target, or undefined when it is not shown (it leads outside its root,
   * to something unreadable, or nowhere).
   */
  async linkTarget(root: Root, relPath: string): Promise<{ flag: number; relPath: string } | undefined> {
    const link = await this.resolveLink(root, relPath);
    return link && { flag: link.flag | SYMLINK_BIT, relPath: link.relPath };
  }

  private async resolveLink(root: Root, relPath: string): Promise<{ flag: number; relPath: string } | undefined> {
    if (this.policy.isExcluded(relPath)) return undefined;
    const decision = await this.policy.decide(LOCAL, 'read', uriFor(root, relPath));
    if (!decision.allow) return undefined;
    const { kind } = decision.target;
    if (kind === 'missing') return undefined;
    const flag = kind === 'directory' ? KIND_DIRECTORY : kind === 'file' ? KIND_FILE : KIND_OTHER;
    return { flag, relPath: decision.target.relPath };
  }
}

function toSnapshot(sorted: readonly { name: string; flag: number; link?: string }[], key: string): Snapshot {
  const links = new Map<number, string>();
  const flags = new Uint8Array(sorted.length);
  const names = sorted.map((entry, index) => {
    flags[index] = entry.flag;
    if (entry.link !== undefined) links.set(index, entry.link);
    return entry.name;
  });
  return { names, flags, links, key };
}

function tooLarge(display: string, maxEntries: number): DirectoryTooLarge {
  return new DirectoryTooLarge(
    'TOO_LARGE',
    `${display} has more than ${maxEntries} entries (limits.maxDirectoryEntries); ` +
      'list a narrower directory or use search_files',
  );
}

/** One entry of a snapshot, as walks and listings see it. */
export interface ListedEntry {
  readonly name: string;
  readonly root: Root;
  /** Root-relative path of the entry as listed (a link's own path, not its target's). */
  readonly relPath: string;
  readonly uri: string;
  readonly type: EntryType;
  readonly symlink: boolean;
  /** Where reads of this entry go (the canonical target for a link). */
  readonly target: Target;
}

/**
 * An entry of a snapshot. Its URI and its target are made only when asked for: a walk looks at
 * every name and keeps few, and a target costs a path join, a URI and a display string.
 */
class SnapshotEntry implements ListedEntry {
  readonly name: string;
  readonly root: Root;
  readonly relPath: string;
  readonly type: EntryType;
  readonly symlink: boolean;
  private made: { uri?: string; target?: Target } = {};

  constructor(
    private readonly policy: PolicyEngine,
    private readonly directory: Target,
    private readonly snapshot: Snapshot,
    private readonly index: number,
    /** How deep a walk found it (the start directory's children are 1). */
    readonly depth = 0,
  ) {
    this.name = snapshot.names[index] as string;
    const flag = snapshot.flags[index] as number;
    this.type = KINDS[flag & 3] as EntryType;
    this.symlink = (flag & SYMLINK_BIT) !== 0;
    this.root = directory.root;
    this.relPath = directory.relPath === '' ? this.name : `${directory.relPath}/${this.name}`;
  }

  get uri(): string {
    this.made.uri ??= uriWithin(this.directory, this.name);
    return this.made.uri;
  }

  get target(): Target {
    this.made.target ??= this.policy.targetFor(
      this.root,
      this.snapshot.links.get(this.index) ?? this.relPath,
      this.type,
    );
    return this.made.target;
  }
}

/** The URI of `name` inside `directory`: its URI, encoded once, and the name's (uriFor, one segment at a time). */
function uriWithin(directory: Target, name: string): string {
  return `${directory.uri}/${encodeURIComponent(name)}`;
}

/** The entry at `index` of a snapshot of the directory `directory`. */
export function entryAt(
  policy: PolicyEngine,
  directory: Target,
  snapshot: Snapshot,
  index: number,
  depth = 0,
): ListedEntry & { readonly depth: number } {
  return new SnapshotEntry(policy, directory, snapshot, index, depth);
}

/** Index of the first name after `after` in a sorted snapshot (binary search). */
export function indexAfter(snapshot: Snapshot, after: string): number {
  let low = 0;
  let high = snapshot.names.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((snapshot.names[middle] as string) <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** A snapshot with its directory still held: pages are stat'ed through the descriptor. */
export class OpenListing {
  constructor(
    private readonly directory: AnchoredDirectory,
    readonly target: Target,
    readonly snapshot: Snapshot,
    private readonly policy: PolicyEngine,
  ) {}

  entry(index: number): ListedEntry {
    return entryAt(this.policy, this.target, this.snapshot, index);
  }

  /** What a page shows of an entry, without the target a read of it would need (pages are big). */
  summary(index: number): { name: string; relPath: string; uri: string; type: EntryType; symlink: boolean } {
    const name = this.snapshot.names[index] as string;
    const flag = this.snapshot.flags[index] as number;
    const relPath = this.target.relPath === '' ? name : `${this.target.relPath}/${name}`;
    return {
      name,
      relPath,
      uri: uriWithin(this.target, name),
      type: KINDS[flag & 3] as EntryType,
      symlink: (flag & SYMLINK_BIT) !== 0,
    };
  }

  /** The path through the directory's descriptor of one of its entries, or of the directory itself (never follows a swapped path). */
  at(name?: string): string {
    return this.directory.at(name);
  }

  close(): Promise<void> {
    return this.directory.close();
  }
}
