import type { PolicyEngine } from '../policy/engine.js';
import type { Root, Target } from '../policy/types.js';
import { pause } from '../slices.js';
import {
  type DirectoryListings,
  isPlainDirectory,
  KINDS,
  type ListedEntry,
  RACY_WINDOW_MS,
  type Snapshot,
  SYMLINK_BIT,
} from './listing.js';
import type { DirectoryReaders } from './readers.js';

export interface NameIndexOptions {
  /** A root with more visible entries than this is not indexed (searches walk it). */
  readonly maxEntries: number;
  /** How long an index is used without checking its directories again: the staleness bound. */
  readonly ttlMs: number;
}

/** What a search tests: the name, the kind, and the root-relative path (made only when asked for). */
export interface Candidate {
  readonly name: string;
  readonly type: ListedEntry['type'];
  readonly relPath: string;
}

/** Directories read per message while building. */
const BUILD_BATCH = 64;
/**
 * Entries matched between looks at the loop's slice. A caller's glob may cost up to about a
 * millisecond a name (its bounds allow it), so the scan looks every 16: never more than a few
 * milliseconds past the slice.
 */
const SCAN_STRIDE = 16;
/** Links resolved at once when an index is checked again. */
const LINK_CHECKS = 16;

/**
 * Every visible name of one root, in walk order (pre-order, names sorted), in flat arrays: what
 * a repeated search scans instead of walking. About 85 bytes an entry (the name, its directory,
 * its kind; 8.5 MB measured for 99,890 entries): a million files cost some 85 MB, and
 * `limits.searchIndexMaxEntries` bounds it.
 *
 * It is a list of candidates, never an authority: it is made only of snapshots the listings read
 * through proven descriptors, so it holds nothing a walk could not have shown, and every hit is
 * still a name the caller's tool decides on before touching it. What it can be is stale: it is
 * used for `ttlMs` after it was built or checked; after that each of its directories is lstat'ed
 * (in a worker) and each of its links resolved again, and any change, or a directory changed too
 * recently to trust its time, makes the next search walk and a new index be built.
 */
class BuiltIndex {
  constructor(
    readonly root: Root,
    readonly names: readonly string[],
    readonly flags: Uint8Array,
    /** Directory (index into `dirs`) of each entry. */
    readonly parents: Int32Array,
    readonly links: ReadonlyMap<number, string>,
    readonly dirs: readonly Target[],
    readonly dirKeys: readonly string[],
    /** Entry index of each directory (the root's is -1). */
    readonly dirEntry: Int32Array,
    /** One past the last entry of each directory's subtree. */
    readonly dirEnd: Int32Array,
    readonly dirByPath: ReadonlyMap<string, number>,
    public checkedAt: number,
  ) {}

  relPathOf(entry: number): string {
    const directory = this.dirs[this.parents[entry] as number] as Target;
    const name = this.names[entry] as string;
    return directory.relPath === '' ? name : `${directory.relPath}/${name}`;
  }
}

/** A hit, made as a walk makes its entries: the URI and the target only when asked for. */
class IndexedEntry implements ListedEntry {
  readonly name: string;
  readonly root: Root;
  readonly relPath: string;
  readonly type: ListedEntry['type'];
  readonly symlink: boolean;
  private madeUri: string | undefined;
  private madeTarget: Target | undefined;

  constructor(
    private readonly policy: PolicyEngine,
    private readonly index: BuiltIndex,
    private readonly entry: number,
  ) {
    const flag = index.flags[entry] as number;
    this.name = index.names[entry] as string;
    this.root = index.root;
    this.relPath = index.relPathOf(entry);
    this.type = KINDS[flag & 3] as ListedEntry['type'];
    this.symlink = (flag & SYMLINK_BIT) !== 0;
  }

  get uri(): string {
    const directory = this.index.dirs[this.index.parents[this.entry] as number] as Target;
    this.madeUri ??= `${directory.uri}/${encodeURIComponent(this.name)}`;
    return this.madeUri;
  }

  get target(): Target {
    this.madeTarget ??= this.policy.targetFor(this.root, this.index.links.get(this.entry) ?? this.relPath, this.type);
    return this.madeTarget;
  }
}

/** The scan's view of one entry: reused for every entry, so a scan of a million allocates nothing per name. */
class Cursor implements Candidate {
  name = '';
  type: ListedEntry['type'] = 'file';
  entry = 0;

  constructor(private readonly index: BuiltIndex) {}

  get relPath(): string {
    return this.index.relPathOf(this.entry);
  }
}

export interface IndexScan {
  readonly matches: ListedEntry[];
  /** True when the scan stopped at `limit + 1` matches: there is a next page. */
  readonly more: boolean;
}

/** Per-root name indexes of one runtime (a reload, which may change what is visible, starts afresh). */
export class NameIndex {
  private readonly built = new Map<string, BuiltIndex>();
  private readonly building = new Map<string, Promise<void>>();
  /** Roots changed while their index was being built: that build is thrown away. */
  private readonly stale = new Set<string>();
  /** When a root last failed to be indexed. */
  private readonly failedAt = new Map<string, number>();
  private readonly checking = new Map<BuiltIndex, Promise<boolean>>();
  /** Indexes built so far (tests look at it). */
  builds = 0;

  constructor(
    private readonly listings: DirectoryListings,
    private readonly readers: DirectoryReaders,
    private readonly policy: PolicyEngine,
    private readonly options: NameIndexOptions,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Searches `start` from the index, or returns undefined when there is no current one (the
   * caller walks; an index is then built in the background for the next search). `after` resumes
   * strictly after a path in walk order; `budget` is how many entries may be looked at.
   */
  async search(
    start: Target,
    matches: (candidate: Candidate) => boolean,
    options: {
      readonly after?: string;
      readonly limit: number;
      readonly budget: { visited: number; exhausted: boolean; readonly maxEntries: number };
      readonly signal?: AbortSignal;
    },
  ): Promise<IndexScan | undefined> {
    const index = await this.current(start.root);
    if (!index) return undefined;
    const range = rangeOf(index, start, options.after);
    if (!range) return undefined;
    const { budget } = options;
    const [from, end] = range;
    const to = Math.min(end, from + Math.max(0, budget.maxEntries - budget.visited));
    const cursor = new Cursor(index);
    const found: number[] = [];
    let i = from;
    for (; i < to; i++) {
      if ((i - from) % SCAN_STRIDE === SCAN_STRIDE - 1) {
        const turn = pause();
        if (turn) await turn;
        options.signal?.throwIfAborted();
      }
      cursor.entry = i;
      cursor.name = index.names[i] as string;
      cursor.type = KINDS[(index.flags[i] as number) & 3] as ListedEntry['type'];
      if (!matches(cursor)) continue;
      found.push(i);
      if (found.length > options.limit) break;
    }
    // The walk counts what it visited up to its last yield; so does the scan.
    budget.visited += Math.min(i + 1, to) - from;
    // Stopped by the entry budget, not by the page: the walk would say it ran out.
    if (found.length <= options.limit && to < end) budget.exhausted = true;
    const more = found.length > options.limit;
    const shown = more ? found.slice(0, options.limit) : found;
    return { matches: shown.map((entry) => this.entryOf(index, entry)), more };
  }

  /** Names under `root` changed (through mcpd): its index is rebuilt before the next search trusts one. */
  forget(root: Root): void {
    this.built.delete(root.name);
    this.stale.add(root.name);
  }

  /** The indexes held, by root name (for tests). */
  get roots(): string[] {
    return [...this.built.keys()];
  }

  private entryOf(index: BuiltIndex, entry: number): ListedEntry {
    return new IndexedEntry(this.policy, index, entry);
  }

  /** The root's index if it is current; else none, and one is built in the background. */
  private async current(root: Root): Promise<BuiltIndex | undefined> {
    const index = this.built.get(root.name);
    if (index) {
      if (this.now() - index.checkedAt <= this.options.ttlMs) return index;
      // Searches arriving while it is checked share the one check.
      let check = this.checking.get(index);
      if (!check) {
        check = this.check(index).finally(() => this.checking.delete(index));
        this.checking.set(index, check);
      }
      if ((await check) && this.built.get(root.name) === index) return index;
      if (this.built.get(root.name) === index) this.built.delete(root.name);
    }
    this.startBuild(root);
    return undefined;
  }

  /** Whether `index` still holds: no directory changed, every link resolves as it did. */
  private async check(index: BuiltIndex): Promise<boolean> {
    const checkedAt = this.now();
    const changed = await this.readers.changed(
      index.dirs.map((directory, i) => ({ path: directory.absPath, key: index.dirKeys[i] as string })),
    );
    if (changed.length > 0 || !(await this.linksHold(index))) return false;
    index.checkedAt = checkedAt;
    return true;
  }

  /**
   * Whether every link of the index still resolves as it did. A link's target can change without
   * any directory of the root changing (a link outside the root that it goes through, say), so
   * directory identities alone cannot vouch for it.
   */
  private async linksHold(index: BuiltIndex): Promise<boolean> {
    const links = [...index.links];
    for (let at = 0; at < links.length; at += LINK_CHECKS) {
      const checks = await Promise.all(
        links.slice(at, at + LINK_CHECKS).map(async ([entry, target]) => {
          const now = await this.listings.linkTarget(index.root, index.relPathOf(entry));
          return now !== undefined && now.relPath === target && now.flag === index.flags[entry];
        }),
      );
      if (checks.includes(false)) return false;
    }
    return true;
  }

  private startBuild(root: Root): void {
    if (this.building.has(root.name)) return;
    // A root that could not be indexed (too big, too fresh, a directory gone or too large) is not
    // tried again by every search: once per staleness bound at most.
    const failed = this.failedAt.get(root.name);
    if (failed !== undefined && this.now() - failed <= this.options.ttlMs) return;
    this.stale.delete(root.name);
    const build = this.build(root)
      .then((index) => {
        if (!index) this.failedAt.set(root.name, this.now());
        else if (!this.stale.has(root.name)) this.built.set(root.name, index);
      })
      // A directory that vanished or grew too large mid-build: no index, the searches walk.
      .catch(() => {
        this.failedAt.set(root.name, this.now());
      })
      .finally(() => this.building.delete(root.name));
    this.building.set(root.name, build);
  }

  /** Resolves when no index is being built (tests wait on it). */
  async settled(): Promise<void> {
    await Promise.all(this.building.values());
  }

  private async build(root: Root): Promise<BuiltIndex | undefined> {
    const startedAt = this.now();
    const top = this.policy.targetFor(root, '', 'directory');
    const dirs: Target[] = [top];
    const snapshots: Snapshot[] = [];
    /** Per directory, the directory indexes of its subdirectories, in name order. */
    const children: number[][] = [[]];
    let entries = 0;
    let next = 0;
    while (next < dirs.length) {
      const batch = dirs.slice(next, next + BUILD_BATCH);
      const first = next;
      next += batch.length;
      const read = await Promise.all(this.listings.readMany(batch));
      for (const [offset, snapshot] of read.entries()) {
        const at = first + offset;
        // Changed within the racy window: its time cannot vouch for it later; not worth indexing yet.
        if (mtimeMsOf(snapshot.key) + RACY_WINDOW_MS > startedAt) return undefined;
        snapshots[at] = snapshot;
        entries += snapshot.names.length;
        if (entries > this.options.maxEntries) return undefined;
        const directory = dirs[at] as Target;
        for (let i = 0; i < snapshot.names.length; i++) {
          if ((i & 1023) === 1023) {
            const turn = pause();
            if (turn) await turn;
          }
          if (!isPlainDirectory(snapshot, i)) continue;
          const name = snapshot.names[i] as string;
          const relPath = directory.relPath === '' ? name : `${directory.relPath}/${name}`;
          (children[at] as number[]).push(dirs.length);
          children.push([]);
          dirs.push(this.policy.targetFor(root, relPath, 'directory'));
        }
      }
      const turn = pause();
      if (turn) await turn;
    }
    // Flatten in walk order: a directory's entries, each subdirectory's subtree right after it.
    const names: string[] = new Array(entries);
    const flags = new Uint8Array(entries);
    const parents = new Int32Array(entries);
    const links = new Map<number, string>();
    const dirEntry = new Int32Array(dirs.length).fill(-1);
    const dirEnd = new Int32Array(dirs.length);
    // An explicit stack, not recursion, and in slices: half a million entries are tens of milliseconds.
    let at = 0;
    const stack: { dir: number; next: number; child: number }[] = [{ dir: 0, next: 0, child: 0 }];
    while (stack.length > 0) {
      const frame = stack.at(-1) as { dir: number; next: number; child: number };
      const snapshot = snapshots[frame.dir] as Snapshot;
      if (frame.next >= snapshot.names.length) {
        dirEnd[frame.dir] = at;
        stack.pop();
        continue;
      }
      if ((at & 4095) === 4095) {
        const turn = pause();
        if (turn) await turn;
      }
      const i = frame.next++;
      const entry = at++;
      names[entry] = snapshot.names[i] as string;
      flags[entry] = snapshot.flags[i] as number;
      parents[entry] = frame.dir;
      const link = snapshot.links.get(i);
      if (link !== undefined) links.set(entry, link);
      if (isPlainDirectory(snapshot, i)) {
        const sub = (children[frame.dir] as number[])[frame.child++] as number;
        dirEntry[sub] = entry;
        stack.push({ dir: sub, next: 0, child: 0 });
      }
    }
    const dirByPath = new Map(dirs.map((directory, i) => [directory.relPath, i]));
    this.builds += 1;
    return new BuiltIndex(
      root,
      names,
      flags,
      parents,
      links,
      dirs,
      snapshots.map((snapshot) => snapshot.key),
      dirEntry,
      dirEnd,
      dirByPath,
      startedAt,
    );
  }
}

/** Entries [from, to) to scan for a search of `start` resuming after `after`; undefined when the index cannot say. */
function rangeOf(index: BuiltIndex, start: Target, after: string | undefined): [number, number] | undefined {
  const dir = index.dirByPath.get(start.relPath);
  if (dir === undefined) return undefined;
  const from = (index.dirEntry[dir] as number) + 1;
  const to = index.dirEnd[dir] as number;
  if (after === undefined) return [from, to];
  // Resume right after the path's own entry: in pre-order its subtree comes next.
  const slash = after.lastIndexOf('/');
  const parent = index.dirByPath.get(slash === -1 ? '' : after.slice(0, slash));
  if (parent === undefined) return undefined;
  const name = slash === -1 ? after : after.slice(slash + 1);
  const end = index.dirEnd[parent] as number;
  for (let i = (index.dirEntry[parent] as number) + 1; i < end; i++) {
    if (index.parents[i] === parent && index.names[i] === name)
      return i + 1 >= from && i < to ? [i + 1, to] : undefined;
  }
  return undefined;
}

function mtimeMsOf(key: string): number {
  const mtimeNs = key.split(':')[2];
  return mtimeNs === undefined ? Number.POSITIVE_INFINITY : Number(BigInt(mtimeNs) / 1_000_000n);
}
