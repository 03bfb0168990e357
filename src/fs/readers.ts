import type { WorkerPool } from './workers.js';

/**
 * Whole directories read off the event loop, many per message. Read through fs/promises, each
 * directory of a walk costs five thread-pool round trips (open, readlink, fstat, opendir, close):
 * a walk of 10,000 directories spent two thirds of its time waiting on them, one at a time. A
 * worker does the same system calls synchronously, back to back, for a batch of directories, and
 * sends back their names already sorted (in the order the main thread's walk uses: plain `<` on
 * UTF-16 code units, the same in every isolate).
 *
 * Each directory is opened as the main thread opens it (O_DIRECTORY | O_NOFOLLOW on its canonical
 * path) and proven: the descriptor's own path (/proc/self/fd, same process) must be the path
 * asked for, or the directory is reported gone. Its names are read through that descriptor, so
 * they can only come from the proven directory. `known` is the identity key of a snapshot the
 * caller already holds: a directory whose key still matches is reported unchanged, not read.
 */
export const DIRECTORY_HANDLERS = `
const fs = require('node:fs');
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
function readOne(path, known, maxEntries) {
  let fd = -1;
  try {
    fd = fs.openSync(path, FLAGS);
    const own = '/proc/self/fd/' + fd;
    if (fs.readlinkSync(own) !== path) return { error: 'MOVED' };
    const stats = fs.fstatSync(fd, { bigint: true });
    const key = stats.dev + ':' + stats.ino + ':' + stats.mtimeNs + ':' + stats.ctimeNs;
    const mtimeMs = Number(stats.mtimeMs);
    if (key === known) return { key, mtimeMs, unchanged: true };
    const dir = fs.opendirSync(own, { bufferSize: 1024 });
    const found = [];
    let dirent;
    try {
      while ((dirent = dir.readSync()) !== null) {
        if (found.length >= maxEntries) return { key, mtimeMs, tooLarge: true };
        const kind = dirent.isSymbolicLink() ? 3 : dirent.isDirectory() ? 1 : dirent.isFile() ? 0 : 2;
        found.push({ name: dirent.name, kind });
      }
    } finally {
      dir.closeSync();
    }
    found.sort(byName);
    const kinds = new Uint8Array(found.length);
    const names = found.map((entry, i) => ((kinds[i] = entry.kind), entry.name));
    return { key, mtimeMs, names, kinds };
  } catch (error) {
    return { error: error.code || 'EIO' };
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
function changed(path, key) {
  try {
    const stats = fs.lstatSync(path, { bigint: true });
    return !stats.isDirectory() || stats.dev + ':' + stats.ino + ':' + stats.mtimeNs + ':' + stats.ctimeNs !== key;
  } catch {
    return true;
  }
}
handlers.check = ({ id, check }) => {
  const changedAt = [];
  for (let i = 0; i < check.length; i++) if (changed(check[i].path, check[i].key)) changedAt.push(i);
  parentPort.postMessage({ id, changed: changedAt });
};
handlers.directories = ({ id, directories, maxEntries }) => {
  const replies = directories.map(({ path, known }) => readOne(path, known, maxEntries));
  parentPort.postMessage({ id, replies });
};
`;

/** What an entry is, as a directory read reports it (a symlink is not followed). */
export const RAW_FILE = 0;
export const RAW_DIRECTORY = 1;
export const RAW_OTHER = 2;
export const RAW_SYMLINK = 3;

/** One directory, as a worker found it. */
export type RawDirectory =
  /** Gone, not a directory, swapped for a link, or unreadable: `error` is the errno code, or MOVED. */
  | { readonly error: string }
  /** Unchanged since the snapshot the caller holds under `key`. */
  | { readonly key: string; readonly mtimeMs: number; readonly unchanged: true }
  /** More entries than the caller's limit. */
  | { readonly key: string; readonly mtimeMs: number; readonly tooLarge: true }
  /** Read: names sorted, each with its RAW_* kind. */
  | { readonly key: string; readonly mtimeMs: number; readonly names: string[]; readonly kinds: Uint8Array };

export interface DirectoryRequest {
  /** Canonical absolute path. */
  readonly path: string;
  /** Key of a snapshot already held for it, if any. */
  readonly known?: string;
}

/** Directory reads on the file-system workers (fs/fsWorkers.ts); a batch waits for a free one. */
export class DirectoryReaders {
  constructor(private readonly pool: WorkerPool) {}

  /** Reads `directories` in order, each up to `maxEntries` entries. */
  async read(directories: readonly DirectoryRequest[], maxEntries: number): Promise<RawDirectory[]> {
    const reply = await this.pool.call<{ id: number; replies: RawDirectory[] }>({
      kind: 'directories',
      directories: directories.map(({ path, known }) => ({ path, known: known ?? '' })),
      maxEntries,
    });
    return reply.replies;
  }

  /**
   * Which of `directories` changed since they were read under `key`: one lstat each, by path (a
   * path that now leads elsewhere, through a swapped link, finds another identity and counts as
   * changed). What changed is read again, proven, by the caller.
   */
  async changed(directories: readonly { path: string; key: string }[]): Promise<number[]> {
    const reply = await this.pool.call<{ id: number; changed: number[] }>({ kind: 'check', check: directories });
    return reply.changed;
  }
}
