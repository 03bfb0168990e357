import type { BigIntStats } from 'node:fs';
import type { EntryKind, FollowMode } from '../policy/types.js';
import type { WorkerPool } from './workers.js';

/**
 * The few system calls every read, stat and path decision makes, run synchronously in worker
 * threads and many per message. Through fs/promises, resolving a path (realpath, stat) and reading
 * a small file (open, readlink, fstat, read, close) are seven thread-pool round trips, each tens
 * of microseconds of waiting and of main-thread work: a get_file_info spent most of its time idle
 * between them, and a batch of 100 small files was 700 round trips. Here each is one message,
 * and requests that arrive while every worker is busy travel together in the next one.
 *
 * The checks are the main thread's, made by the same calls: a file is opened with O_NOFOLLOW (the
 * last component cannot be a link) and O_NONBLOCK (a FIFO never waits for a writer), then proven
 * by the descriptor's own path (/proc/self/fd: workers share the process's descriptor table) or,
 * where that is missing, by device and inode. Only what was proven is described or read, and only
 * a regular file no larger than the caller's cap is read: a message never holds more than
 * MAX_JOBS of those.
 */
export const SYSCALL_HANDLERS = `
const fs = require('node:fs');
const { basename, dirname, join } = require('node:path');
const OPEN = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const kindOf = (s) => (s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other');
// Anything unusual (a missing name, a loop, a dangling link) is answered by the main thread's own
// resolver, which knows what each means: here only the common case is made fast.
function resolve(path, entry) {
  try {
    const parent = dirname(path);
    if (entry && parent !== path) {
      const canonicalParent = fs.realpathSync.native(parent);
      if (!fs.statSync(canonicalParent).isDirectory()) return { fallback: true };
      const canonical = join(canonicalParent, basename(path));
      return { canonical, kind: kindOf(fs.lstatSync(canonical)) };
    }
    const canonical = fs.realpathSync.native(path);
    return { canonical, kind: kindOf(fs.statSync(canonical)) };
  } catch {
    return { fallback: true };
  }
}
function proven(fd, path) {
  let own = null;
  try {
    own = fs.readlinkSync('/proc/self/fd/' + fd);
  } catch {}
  if (own !== null) return own === path;
  const opened = fs.fstatSync(fd, { bigint: true });
  const named = fs.statSync(path, { bigint: true });
  return opened.dev === named.dev && opened.ino === named.ino;
}
function open(path, readUpTo, transfer) {
  let fd = -1;
  try {
    fd = fs.openSync(path, OPEN);
    if (!proven(fd, path)) return { error: 'MOVED' };
    const s = fs.fstatSync(fd, { bigint: true });
    const stats = { dev: s.dev, ino: s.ino, mode: s.mode, nlink: s.nlink, size: s.size,
      mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, birthtimeNs: s.birthtimeNs };
    if (!s.isFile() || s.size > BigInt(readUpTo)) return { stats };
    const size = Number(s.size);
    // Not Buffer.allocUnsafe: a small one is a slice of a shared pool, which would travel whole.
    const data = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const n = fs.readSync(fd, data, filled, size - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    transfer.push(data.buffer);
    return { stats, data, filled };
  } catch (error) {
    return { error: error.code || 'EIO' };
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
handlers.syscalls = ({ id, jobs }) => {
  const transfer = [];
  const replies = jobs.map((job) =>
    job.op === 'open' ? open(job.path, job.readUpTo, transfer) : resolve(job.path, job.op === 'resolve-entry'),
  );
  parentPort.postMessage({ id, replies }, transfer);
};
`;

/** Requests in one message: enough to carry a batch read's files, few enough that none waits long. */
const MAX_JOBS = 64;

/** What the worker reports of an opened descriptor: enough to describe, version and judge it. */
interface WireStats {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly birthtimeNs: bigint;
}

const S_IFMT = 0o170000n;
const S_IFREG = 0o100000n;
const S_IFDIR = 0o040000n;

/** The part of BigIntStats that describing, versioning and judging a file use. */
export type FileStats = Pick<
  BigIntStats,
  'dev' | 'ino' | 'mode' | 'nlink' | 'size' | 'mtimeNs' | 'ctimeNs' | 'birthtimeNs' | 'isFile' | 'isDirectory'
>;

function fileStats(wire: WireStats): FileStats {
  return {
    ...wire,
    isFile: () => (wire.mode & S_IFMT) === S_IFREG,
    isDirectory: () => (wire.mode & S_IFMT) === S_IFDIR,
  };
}

export type Resolved = { readonly canonical: string; readonly kind: EntryKind } | { readonly fallback: true };

export type Opened =
  /** Not opened or not proven: the errno code, or MOVED when the descriptor is not the path's. */
  | { readonly error: string }
  /** Proven; `data` is the whole file (or what the file held when read) when it was read. */
  | { readonly stats: FileStats; readonly data?: Buffer };

type Job =
  | { readonly op: 'resolve' | 'resolve-entry'; readonly path: string }
  | { readonly op: 'open'; readonly path: string; readonly readUpTo: number };

type WireReply =
  | { fallback: true }
  | { canonical: string; kind: EntryKind }
  | { error: string }
  | { stats: WireStats; data?: Uint8Array; filled?: number };

interface Waiting {
  readonly job: Job;
  readonly resolve: (reply: WireReply) => void;
  readonly reject: (error: Error) => void;
}

/** System calls on the file-system workers (fs/fsWorkers.ts), each message a batch of whatever was waiting. */
export class SyscallWorkers {
  private readonly queue: Waiting[] = [];
  private sending = 0;

  constructor(private readonly pool: WorkerPool) {}

  /**
   * realpath and stat of `path` (`follow`), or of its parent and an lstat of its last component
   * (`nofollow-last`); `fallback` for anything but an entry that exists.
   */
  async resolve(path: string, mode: FollowMode): Promise<Resolved> {
    return (await this.run({ op: mode === 'nofollow-last' ? 'resolve-entry' : 'resolve', path })) as Resolved;
  }

  /** Opens `path` as a decided target is opened, proves it, stats it and, when a regular file of at most `readUpTo` bytes, reads it. */
  async open(path: string, readUpTo: number): Promise<Opened> {
    const reply = (await this.run({ op: 'open', path, readUpTo })) as
      | { error: string }
      | { stats: WireStats; data?: Uint8Array; filled?: number };
    if ('error' in reply) return reply;
    const stats = fileStats(reply.stats);
    if (!reply.data) return { stats };
    return { stats, data: Buffer.from(reply.data.buffer, 0, reply.filled ?? reply.data.length) };
  }

  private run(job: Job): Promise<WireReply> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  /** Sends what waits while a worker is free: the first request goes at once, later ones gather. */
  private pump(): void {
    while (this.queue.length > 0 && this.sending < this.pool.size) {
      const batch = this.queue.splice(0, MAX_JOBS);
      this.sending += 1;
      void this.send(batch).finally(() => {
        this.sending -= 1;
        this.pump();
      });
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    try {
      const reply = await this.pool.call<{ id: number; replies: WireReply[] }>({
        kind: 'syscalls',
        jobs: batch.map((w) => w.job),
      });
      for (const [i, waiting] of batch.entries()) waiting.resolve(reply.replies[i] as WireReply);
    } catch (error) {
      for (const waiting of batch) waiting.reject(error as Error);
    }
  }
}
