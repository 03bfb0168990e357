import type { PolicyEngine } from '../policy/engine.js';
import type { Target } from '../policy/types.js';
import { type DirectoryListings, isPlainDirectory, type Snapshot } from './listing.js';

/** Directories per message to a reader worker: enough to make the round trip cheap, few enough to answer fast. */
const BATCH = 64;
/** Messages out at once: one being read while the answer to the other is filtered. */
const IN_FLIGHT = 2;
/** Names read ahead and not yet taken by the walk: what a walk may hold beyond what it shows. */
const WINDOW = 50_000;

interface Held {
  readonly promise: Promise<Snapshot>;
  /** Names counted against the window (until taken). */
  entries: number;
  taken: boolean;
}

interface Wanted {
  readonly target: Target;
  /** The depth the walk enters it at (the start's children are 1; the start itself 1 too, as their directory). */
  readonly depth: number;
}

/**
 * The subdirectories of one read directory still to be queued, in name order. Their targets are
 * made a batch at a time as they are sent, not all at once: a directory of 200,000 subdirectories
 * would otherwise hold the loop for the better part of a second.
 */
interface Pending {
  readonly directory: Target;
  readonly snapshot: Snapshot;
  /** Index of the next entry to look at. */
  next: number;
  /** The depth its subdirectories are entered at. */
  readonly depth: number;
}

/**
 * The directories a walk will enter, read ahead of it in batches by the reader workers, in the
 * order a pre-order walk wants them: each snapshot read queues its own subdirectories at once,
 * first-needed on top, so a deep tree is not one round trip per level. The walk takes what it
 * needs; anything it asks for that is not read yet it reads itself. Bounded: at most WINDOW names
 * read and not taken, IN_FLIGHT messages out; closed when the walk ends, and what is still held
 * is dropped. Only the listings decide what is visible: the read-ahead is a schedule, not an
 * authority.
 */
export class ReadAhead {
  private readonly held = new Map<string, Held>();
  /** A stack: the top's next subdirectory is wanted first. */
  private readonly wanted: Pending[] = [];
  /** Directories the walk read itself: not to be read ahead any more. */
  private readonly readHere = new Set<string>();
  private inFlight = 0;
  private buffered = 0;
  private closed = false;

  constructor(
    private readonly listings: DirectoryListings,
    private readonly policy: PolicyEngine,
    private readonly options: {
      /** The walk does not enter directories deeper than this. */
      readonly maxDepth?: number;
      /** Root-relative path a resumed walk starts strictly after: nothing before it is read. */
      readonly after?: string;
    },
  ) {}

  /**
   * The snapshot of `directory` if it was read ahead (or is being read), else undefined and it is
   * no longer wanted: the walk reads it itself and seeds from it.
   */
  take(directory: Target): Promise<Snapshot> | undefined {
    const held = this.held.get(directory.absPath);
    if (!held) {
      this.readHere.add(directory.absPath);
      return undefined;
    }
    this.held.delete(directory.absPath);
    held.taken = true;
    if (held.entries > 0) {
      this.buffered -= held.entries;
      held.entries = 0;
      this.pump();
    }
    return held.promise;
  }

  /** `directory`, entered at `depth`, holds `snapshot`: queue the subdirectories the walk will enter. */
  seed(directory: Target, snapshot: Snapshot, depth: number): void {
    const { maxDepth, after } = this.options;
    if (this.closed || (maxDepth !== undefined && depth >= maxDepth)) return;
    // On the resume path, the walk skips the names before its mark at this level.
    let mark: string | undefined;
    if (after !== undefined && (directory.relPath === '' || after.startsWith(`${directory.relPath}/`))) {
      const rest = directory.relPath === '' ? after : after.slice(directory.relPath.length + 1);
      mark = rest.split('/', 1)[0];
    }
    let next = 0;
    if (mark !== undefined) {
      // The first name at or after the mark (names are sorted).
      let high = snapshot.names.length;
      while (next < high) {
        const middle = (next + high) >>> 1;
        if ((snapshot.names[middle] as string) < mark) next = middle + 1;
        else high = middle;
      }
    }
    this.wanted.push({ directory, snapshot, next, depth: depth + 1 });
    this.pump();
  }

  /** The next subdirectory wanted, made into a target now; undefined when none is left. */
  private nextWanted(): Wanted | undefined {
    for (let top = this.wanted.at(-1); top; top = this.wanted.at(-1)) {
      const { snapshot, directory } = top;
      while (top.next < snapshot.names.length && !isPlainDirectory(snapshot, top.next)) top.next += 1;
      if (top.next >= snapshot.names.length) {
        this.wanted.pop();
        continue;
      }
      const name = snapshot.names[top.next++] as string;
      const relPath = directory.relPath === '' ? name : `${directory.relPath}/${name}`;
      const target = this.policy.targetFor(directory.root, relPath, 'directory');
      if (!this.readHere.has(target.absPath)) return { target, depth: top.depth };
    }
    return undefined;
  }

  /** Drops everything held; answers still on their way are ignored. */
  close(): void {
    this.closed = true;
    this.held.clear();
    this.wanted.length = 0;
    this.readHere.clear();
  }

  private pump(): void {
    while (!this.closed && this.inFlight < IN_FLIGHT && this.buffered < WINDOW && this.wanted.length > 0) {
      const batch: Wanted[] = [];
      for (let next = this.nextWanted(); next; next = batch.length < BATCH - 1 ? this.nextWanted() : undefined) {
        batch.push(next);
      }
      if (batch.length === 0) return;
      this.send(batch);
    }
  }

  private send(batch: readonly Wanted[]): void {
    this.inFlight += 1;
    const promises = this.listings.readMany(batch.map((wanted) => wanted.target));
    const held = batch.map((wanted, i) => {
      const entry: Held = { promise: promises[i] as Promise<Snapshot>, entries: 0, taken: false };
      // A failure is the walk's to see when it takes the directory, and nobody's if it never does.
      entry.promise.catch(() => {});
      this.held.set(wanted.target.absPath, entry);
      return entry;
    });
    void Promise.allSettled(promises).then((results) => {
      this.inFlight -= 1;
      if (this.closed) return;
      // Last first, so the first directory's subdirectories end on top of the stack.
      for (let i = results.length - 1; i >= 0; i--) {
        const result = results[i] as PromiseSettledResult<Snapshot>;
        if (result.status !== 'fulfilled') continue;
        const entry = held[i] as Held;
        if (!entry.taken) {
          entry.entries = result.value.names.length;
          this.buffered += entry.entries;
        }
        this.seed((batch[i] as Wanted).target, result.value, (batch[i] as Wanted).depth);
      }
      this.pump();
    });
  }
}
