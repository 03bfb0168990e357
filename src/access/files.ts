import { performance } from 'node:perf_hooks';
import type { BusChange } from '../cluster/changeBus.js';
import { McpdError, notFoundOrDenied } from '../errors.js';
import {
  type FileInfo,
  mimeTypeOf,
  type ReadRange,
  type ReadResult,
  readChunks,
  readTarget,
  statTarget,
} from '../fs/files.js';
import { type DirectoryListings, indexAfter, type Snapshot } from '../fs/listing.js';
import type { Candidate, NameIndex } from '../fs/nameIndex.js';
import type { RegexPool } from '../fs/regex.js';
import {
  type GrepResult,
  grep,
  type ResumePoint,
  type SearchResult,
  searchNames,
  type TreeResult,
  tree,
} from '../fs/search.js';
import type { StatPool } from '../fs/stats.js';
import type { SyscallWorkers } from '../fs/syscalls.js';
import {
  type DetailedEntry,
  detailsOf,
  type Entry,
  everythingUnder,
  type ListedSummary,
  summariesOf,
  type Viewer,
  WalkBudget,
} from '../fs/walk.js';
import { versionOf } from '../fs/watch.js';
import { createDirectory, deleteEntry, moveEntry, type WriteOutcome, writeFileAtomic } from '../fs/write.js';
import type { DenyDecision, Operation, Principal, Root, Target } from '../policy/types.js';
import type { AccessGate, Caller, PathRequest } from './gate.js';

/** A path as a caller names it: a URI, an absolute path in a root, or a path relative to `root`. */
export interface PathArgs {
  readonly path: string;
  /** Root name or URI for relative paths. */
  readonly root?: string | undefined;
}

/** Where a search or grep starts: one directory, or every root the caller may read (or the one named). */
export interface SearchScope {
  readonly path?: string | undefined;
  readonly root?: string | undefined;
}

export type { DetailedEntry, Entry, FileInfo, GrepResult, ReadRange, ReadResult, ResumePoint, TreeResult };
export { mimeTypeOf };

/**
 * The audited file API: everything a tool or a resource handler may do with files, each call
 * decided by the policy, run by the file layer and recorded in the audit log through the gate.
 * Tools see this and nothing of `fs/` or of the policy engine, so none can touch a file, or judge
 * a path, around the audit.
 */
export class AuditedFiles {
  constructor(
    private readonly gate: AccessGate,
    private readonly fs: {
      readonly listings: DirectoryListings;
      readonly regexes: RegexPool;
      readonly stats: StatPool;
      /** Opens, proves and reads small files off the event loop, many per message. */
      readonly syscalls?: SyscallWorkers;
      /** Search's name indexes: told of every change made through mcpd, which they then rebuild. */
      readonly index?: NameIndex;
      /** Told of every change made through mcpd, for change listeners on every replica. */
      readonly onChanged?: (change: BusChange) => void;
    },
  ) {}

  /** Runs a change of names under `roots`: whatever happens, their name indexes are not trusted after it. */
  private async changing<T>(roots: readonly Target[], change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } finally {
      for (const target of roots) this.fs.index?.forget(target.root);
    }
  }

  /** Tells listeners (through the change feed) of a change made here. */
  private publishChange(target: Target, kind: BusChange['kind'], isDirectory: boolean, version: string): void {
    this.fs.onChanged?.({ root: target.root.name, relPath: target.relPath, kind, isDirectory, version });
  }

  private viewer(caller: Caller): Viewer {
    return { policy: this.gate.policy, principal: caller.principal, ...this.fs };
  }

  // What a caller may see of the configuration: roots and grants, no paths.

  /** The roots this principal may read, in configuration order. */
  visibleRoots(principal: Principal): readonly Root[] {
    const { roots, grants } = this.gate.policy;
    return roots.filter((root) => grants.permits(principal, root.name, 'read'));
  }

  /** Whether any root is open to `principal` for `op` (else a token is challenged for a scope). */
  permitsAnywhere(principal: Principal, op: Operation): boolean {
    const { roots, grants } = this.gate.policy;
    return grants.permitsAnywhere(
      principal,
      op,
      roots.map((root) => root.name),
    );
  }

  /** The scopes that would grant `op` somewhere: what a scope challenge asks for. */
  scopesGranting(op: Operation): string[] {
    return this.gate.policy.grants.scopesGranting(op);
  }

  /** Records a refusal that has no path behind it (a batch too large to start): an access attempt all the same. */
  refuse(caller: Caller, refusal: { op: string; rule: string; reason: string; requested: string }): void {
    this.gate.refuse(caller, refusal);
  }

  // Reading.

  async read(
    caller: Caller,
    at: PathArgs,
    options: { range: ReadRange; maxBytes: number; admit?: (bytes: number) => Promise<void> },
  ): Promise<ReadResult> {
    return this.gate.access(caller, { op: 'read', ...at }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      const result = await readTarget(target, { ...options, signal: caller.signal }, this.fs.syscalls);
      const bytes = result.kind === 'binary' ? result.data.length : Buffer.byteLength(result.text);
      return { value: result, bytes };
    });
  }

  /** A readable file as a resource: what resources/read answers (a directory is not one). */
  async readResource(caller: Caller, uri: string, maxBytes: number): Promise<ReadResult> {
    return this.gate.access(caller, { op: 'read', path: uri }, async (target) => {
      if (target.kind === 'missing' || target.kind === 'directory') throw notFoundOrDenied(target.display);
      const result = await readTarget(
        target,
        { range: { kind: 'whole' }, maxBytes, signal: caller.signal },
        this.fs.syscalls,
      );
      const bytes = result.kind === 'binary' ? result.data.length : Buffer.byteLength(result.text);
      return { value: result, bytes };
    });
  }

  async stat(caller: Caller, at: PathArgs): Promise<FileInfo> {
    return this.gate.access(caller, { op: 'read', ...at }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      return { value: await statTarget(target, this.fs.syscalls) };
    });
  }

  /**
   * A file read chunk by chunk: `onChunk` sees each in order (and may wait, which waits the
   * read). Returns what `summarise` makes of it, audited with the bytes read.
   */
  async stream<T>(
    caller: Caller,
    at: PathArgs,
    chunkBytes: number,
    onChunk: (chunk: Buffer, done: number, size: number) => Promise<void>,
    summarise: (target: Target, bytes: number) => T,
  ): Promise<T> {
    return this.gate.access(caller, { op: 'read', ...at }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      let bytes = 0;
      for await (const { chunk, offset, size } of readChunks(target, chunkBytes, caller.signal)) {
        bytes += chunk.length;
        await onChunk(chunk, offset + chunk.length, size);
      }
      caller.signal?.throwIfAborted();
      return { value: summarise(target, bytes), bytes };
    });
  }

  /** Whether a 2025-era client may subscribe to `uri`: a read decision, audited as one. */
  async subscribe(caller: Caller, uri: string): Promise<string> {
    return this.gate.access(caller, { op: 'read', path: uri }, async (target) => ({ value: target.uri }));
  }

  // Listing and searching.

  /**
   * One page of a directory, from a shared snapshot, found by binary search on `after`. Entries
   * are stat'ed only with `details`: names and kinds come from the directory read alone.
   */
  async list(
    caller: Caller,
    at: PathArgs,
    page: { readonly after?: string | undefined; readonly limit: number; readonly details: boolean },
  ): Promise<{ uri: string; path: string; entries: (ListedSummary | DetailedEntry)[]; total: number; last?: string }> {
    return this.gate.access(caller, { op: 'list', ...at }, async (target) => {
      requireDirectory(target);
      const pageOf = (snapshot: Snapshot) => {
        const start = page.after === undefined ? 0 : indexAfter(snapshot, page.after);
        const end = Math.min(snapshot.names.length, start + page.limit);
        const last = end < snapshot.names.length ? snapshot.names[end - 1] : undefined;
        const rest = {
          uri: target.uri,
          path: target.relPath,
          total: snapshot.names.length,
          ...(last === undefined ? {} : { last }),
        };
        return { start, end, rest };
      };
      if (!page.details) {
        // Names and kinds only: the snapshot is all it takes, and no descriptor needs holding.
        const snapshot = await this.fs.listings.snapshot(target);
        const { start, end, rest } = pageOf(snapshot);
        return { value: { ...rest, entries: await summariesOf(this.gate.policy, target, snapshot, start, end) } };
      }
      const listing = await this.fs.listings.open(target);
      try {
        const { start, end, rest } = pageOf(listing.snapshot);
        return { value: { ...rest, entries: await detailsOf(listing, start, end, this.fs.stats) } };
      } finally {
        await listing.close();
      }
    });
  }

  async tree(
    caller: Caller,
    at: PathArgs,
    options: { readonly maxDepth: number; readonly maxEntries: number },
  ): Promise<TreeResult & { uri: string }> {
    return this.gate.access(caller, { op: 'list', ...at }, async (target) => {
      requireDirectory(target);
      const result = await tree(this.viewer(caller), target, { ...options, signal: caller.signal });
      return { value: { ...result, uri: target.uri } };
    });
  }

  /** Names matching `matches` under the scope, a page at a time. */
  async search(
    caller: Caller,
    scope: SearchScope,
    matches: (entry: Candidate) => boolean,
    options: { readonly limit: number; readonly resume?: ResumePoint | undefined; readonly maxEntries: number },
  ): Promise<SearchResult & { truncated: boolean }> {
    const budget = new WalkBudget(options.maxEntries);
    return this.gate.accessEach(caller, this.starts(caller, scope), async (starts) => {
      for (const start of starts) requireDirectory(start);
      const result = await searchNames(this.viewer(caller), starts, matches, {
        limit: options.limit,
        ...(options.resume ? { resume: options.resume } : {}),
        budget,
        ...(caller.signal ? { signal: caller.signal } : {}),
      });
      return { value: { ...result, truncated: budget.truncated } };
    });
  }

  /** Every readable file of every root the caller may read, a page at a time: resources/list. */
  resources(
    caller: Caller,
    options: { readonly limit: number; readonly resume?: ResumePoint | undefined; readonly maxEntries: number },
  ): Promise<SearchResult & { truncated: boolean }> {
    return this.search(caller, {}, (entry) => entry.type === 'file', options);
  }

  async grep(
    caller: Caller,
    scope: SearchScope,
    options: {
      readonly pattern: { source: string; flags: string };
      readonly include?: ((relPath: string) => boolean) | undefined;
      readonly maxMatches: number;
      readonly maxFileBytes: number;
      readonly timeoutMsPerFile: number;
      readonly maxEntries: number;
    },
  ): Promise<GrepResult & { truncated: boolean }> {
    const budget = new WalkBudget(options.maxEntries);
    return this.gate.accessEach(caller, this.starts(caller, scope), async (starts) => {
      for (const start of starts) requireDirectory(start);
      const result = await grep(this.viewer(caller), starts, {
        pattern: options.pattern,
        ...(options.include ? { include: options.include } : {}),
        maxMatches: options.maxMatches,
        maxFileBytes: options.maxFileBytes,
        timeoutMsPerFile: options.timeoutMsPerFile,
        budget,
        ...(caller.signal ? { signal: caller.signal } : {}),
      });
      return { value: { ...result, truncated: result.limited || budget.truncated } };
    });
  }

  /** Where a search starts: one directory when `path` is given, else every root the caller may read (or the one named). */
  private starts(caller: Caller, scope: SearchScope): PathRequest[] {
    if (scope.path !== undefined) return [{ op: 'list', path: scope.path, root: scope.root }];
    const visible = this.visibleRoots(caller.principal);
    const roots =
      scope.root === undefined ? visible : visible.filter((r) => r.name === scope.root || r.uri === scope.root);
    // A root the caller cannot see is for the gate to refuse, so the attempt is audited like any other.
    if (roots.length === 0 && scope.root !== undefined) return [{ op: 'list', path: '', root: scope.root }];
    if (roots.length === 0) {
      const reason = 'no root is readable by this caller';
      this.gate.refuse(caller, { op: 'list', rule: 'grant:none', reason, requested: '(every root)' });
      throw notFoundOrDenied('(every root)');
    }
    return roots.map((r) => ({ op: 'list', path: r.uri }));
  }

  // Changing.

  async write(
    caller: Caller,
    at: PathArgs,
    data: Uint8Array,
    options: { readonly createOnly?: boolean; readonly expectedEtag?: string | undefined },
  ): Promise<WriteOutcome & { uri: string }> {
    return this.gate.access(caller, { op: 'write', ...at }, async (target) => {
      refuseSymlink(target);
      const outcome = await writeFileAtomic(target, data, {
        ...(options.createOnly ? { createOnly: true } : {}),
        ...(options.expectedEtag === undefined ? {} : { expectedEtag: options.expectedEtag }),
      });
      // Replacing a file changes no name: only a new one makes the root's name index stale.
      if (outcome.created) this.fs.index?.forget(target.root);
      this.publishChange(target, outcome.created ? 'created' : 'changed', false, fileVersion(outcome.info));
      return { value: { ...outcome, uri: target.uri }, bytes: data.length };
    });
  }

  /**
   * Reads a text file, lets `change` compute its new text, and writes it back atomically, unless
   * the file changed meanwhile (CONFLICT). Needs read and write: the result reveals contents.
   */
  async edit<R>(
    caller: Caller,
    at: PathArgs,
    options: { readonly maxBytes: number; readonly expectedEtag?: string | undefined; readonly dryRun: boolean },
    change: (current: { text: string; display: string }) => { text: string; result: R },
  ): Promise<{ uri: string; etag: string; result: R }> {
    return this.gate.accessAll(
      caller,
      [
        { op: 'read', ...at },
        { op: 'write', ...at },
      ],
      async ([readable, writable]) => {
        if (!readable || !writable) throw notFoundOrDenied(null);
        refuseSymlink(writable);
        if (writable.kind === 'missing' || readable.absPath !== writable.absPath) {
          throw notFoundOrDenied(writable.display);
        }
        const current = await readTarget(writable, { range: { kind: 'whole' }, maxBytes: options.maxBytes });
        if (current.kind !== 'text')
          throw new McpdError('NOT_A_FILE', `${writable.display} is binary; edit_file edits text`);
        if (options.expectedEtag !== undefined && options.expectedEtag !== current.info.etag) {
          throw new McpdError(
            'CONFLICT',
            `${writable.display} changed since it was read (ETag is now ${current.info.etag})`,
            {
              currentEtag: current.info.etag,
            },
          );
        }
        const { text, result } = change({ text: current.text, display: writable.relPath });
        if (options.dryRun) return { value: { uri: writable.uri, etag: current.info.etag, result }, bytes: 0 };
        const outcome = await writeFileAtomic(writable, Buffer.from(text, 'utf8'), { expectedEtag: current.info.etag });
        this.publishChange(writable, 'changed', false, fileVersion(outcome.info));
        return { value: { uri: writable.uri, etag: outcome.info.etag, result }, bytes: outcome.info.size };
      },
    );
  }

  async mkdir(caller: Caller, at: PathArgs, recursive: boolean): Promise<{ uri: string; created: boolean }> {
    return this.gate.access(caller, { op: 'write', ...at }, async (target) => {
      refuseSymlink(target);
      const policy = this.gate.policy;
      const { created } = await this.changing([target], () =>
        createDirectory(
          target,
          recursive,
          (relPath) => policy.judge('write', policy.targetFor(target.root, relPath, 'missing')).allow,
        ),
      );
      if (created) this.publishChange(target, 'created', true, 'dir');
      return { value: { uri: target.uri, created } };
    });
  }

  async delete(caller: Caller, at: PathArgs): Promise<{ uri: string; type: 'file' | 'directory' }> {
    return this.gate.access(caller, { op: 'write', ...at }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      const { type } = await this.changing([target], () => deleteEntry(target));
      this.publishChange(target, 'deleted', type === 'directory', 'gone');
      return { value: { uri: target.uri, type } };
    });
  }

  /**
   * A move, judged whole: the source must be readable and writable, the destination writable, and a
   * directory carries every entry beneath it along, so each must be readable and writable where it
   * is and writable where it lands (else moving a directory would make an unreadable file readable,
   * or empty a write-only drop box into a readable place). A refused entry is audited and refuses
   * the move.
   */
  move(
    caller: Caller,
    move: { readonly source: string; readonly destination: string; readonly root?: string | undefined },
    options: { readonly maxEntries: number },
  ): Promise<{ source: string; destination: string }> {
    const { source, destination, root } = move;
    return this.gate.accessAll(
      caller,
      [
        { op: 'read', path: source, root },
        { op: 'write', path: source, root },
        { op: 'write', path: destination, root },
      ],
      async ([, from, to]) => {
        if (!from || !to || from.kind === 'missing') throw notFoundOrDenied(from?.display ?? null);
        let moved = 'other' as 'file' | 'directory' | 'other';
        await this.changing([from, to], () =>
          moveEntry(from, to, async (kind) => {
            moved = kind;
            if (kind === 'directory') await this.judgeCarried(caller, from, to, options.maxEntries);
          }),
        );
        this.publishChange(from, 'deleted', moved === 'directory', 'gone');
        // The moved entry keeps its times: a watcher's report of it cannot be told from this one.
        this.publishChange(to, 'created', moved === 'directory', moved === 'directory' ? 'dir' : '');
        return { value: { source: from.uri, destination: to.uri } };
      },
    );
  }

  /** Judges every entry a directory move would carry; throws (after auditing it) at the first refused. */
  private async judgeCarried(caller: Caller, from: Target, to: Target, maxEntries: number): Promise<void> {
    const { policy } = this.gate;
    let seen = 0;
    for await (const entry of everythingUnder(from, caller.signal)) {
      seen += 1;
      if (seen > maxEntries) {
        throw new McpdError(
          'TOO_LARGE',
          `${from.display} holds more than ${maxEntries} entries; move its contents in parts`,
        );
      }
      const kind = entry.kind === 'directory' ? 'directory' : 'file';
      const here = policy.targetFor(from.root, `${from.relPath}/${entry.relPath}`, kind);
      const there = policy.targetFor(to.root, `${to.relPath}/${entry.relPath}`, kind);
      const refused = [policy.judge('read', here), policy.judge('write', here), policy.judge('write', there)].find(
        (decision): decision is DenyDecision => !decision.allow,
      );
      if (refused) {
        const requested = `${entry.relPath} (carried by the move of ${from.relPath})`;
        this.gate.recordDenial(caller, { op: refused.op, path: requested }, refused, performance.now());
        throw new McpdError(
          'WRITE_DENIED',
          `${from.display}: refused, the directory holds entries this move may not carry (${refused.reason})`,
        );
      }
    }
  }
}

function requireDirectory(target: Target): void {
  if (target.kind === 'missing') throw notFoundOrDenied(target.display);
  if (target.kind !== 'directory') throw new McpdError('NOT_A_DIRECTORY', `${target.display} is not a directory`);
}

function refuseSymlink(target: Target): void {
  if (target.kind === 'symlink') {
    throw new McpdError('NOT_A_FILE', `${target.display} is a symbolic link; write to the file it points to`);
  }
}

/** A file's version in change reports, from what a write returned (as fs/watch.ts's versionOf makes it from stats). */
function fileVersion(info: FileInfo): string {
  return versionOf({ size: info.size, mtimeMs: Date.parse(info.modified), isDirectory: false });
}
