import { constants } from 'node:fs';
import { type FileHandle, open, readlink, stat } from 'node:fs/promises';
import { McpdError, notFoundOrDenied } from '../errors.js';

const PROC_FD = '/proc/self/fd';

/**
 * A directory held by descriptor, proven to be the canonical directory the policy ruled on.
 *
 * Node has no `*at` system calls, but on Linux `/proc/self/fd/N/name` is resolved by the kernel
 * from the directory that descriptor N holds, whatever has happened to its path since. So an
 * operation named through `at(name)` lands in that directory even if a local process swaps it, or
 * a directory above it, for a symlink mid-call (the race that let move, delete and mkdir reach
 * outside a root). The last component is never followed by rename, link, unlink, rmdir and
 * mkdir, and is opened with O_NOFOLLOW elsewhere.
 *
 * What remains outside mcpd's reach: a process that can write both inside and outside a root can
 * move a whole directory out of it while a call holds it; the call then acts on that directory
 * where it now is. Moving directories across the boundary needs write access to both sides,
 * which is the host's to deny.
 */
export interface AnchoredDirectory {
  /** The canonical path it was opened as (for messages and identity, never for access). */
  readonly path: string;
  /** The path through the descriptor of `name` inside this directory (or of the directory itself). */
  at(name?: string): string;
  readonly handle: FileHandle;
  close(): Promise<void>;
}

let procAvailable: boolean | undefined;

/** Whether this platform can anchor operations to a descriptor (Linux's /proc/self/fd). */
async function canAnchor(): Promise<boolean> {
  procAvailable ??= await stat(PROC_FD).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
  return procAvailable;
}

/** The error for a platform that cannot anchor: mcpd refuses rather than race. */
function cannotAnchor(shown: string): McpdError {
  return new McpdError(
    'UNSUPPORTED',
    `${shown}: this platform cannot anchor file operations to a directory descriptor (/proc/self/fd), ` +
      'so mcpd refuses to change files here rather than race',
  );
}

/**
 * Opens the directory at canonical `path` and proves it is that directory now: the descriptor's
 * own path (from /proc) must be `path` itself, so no symlink anywhere on the way was followed.
 * `shown` is how a refusal names it (root name and relative path).
 */
export async function openAnchored(path: string, shown: string): Promise<AnchoredDirectory> {
  if (!(await canAnchor())) throw cannotAnchor(shown);
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EACCES' || code === 'EPERM') {
      throw notFoundOrDenied(shown);
    }
    throw error;
  }
  return anchor(handle, path, shown);
}

/** Opens `name` inside `parent` as a directory, without following a symlink; anchored like openAnchored. */
export async function openChild(parent: AnchoredDirectory, name: string, shown: string): Promise<AnchoredDirectory> {
  let handle: FileHandle;
  try {
    handle = await open(parent.at(name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ELOOP') {
      throw new McpdError('NOT_A_DIRECTORY', `${shown} is not a directory`);
    }
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM') throw notFoundOrDenied(shown);
    throw error;
  }
  return anchor(handle, `${parent.path}/${name}`, shown);
}

async function anchor(handle: FileHandle, path: string, shown: string): Promise<AnchoredDirectory> {
  const fd = handle.fd;
  const actual = await readlink(`${PROC_FD}/${fd}`).catch(() => null);
  if (actual !== path) {
    await handle.close().catch(() => {});
    throw notFoundOrDenied(shown);
  }
  let closed = false;
  return {
    path,
    handle,
    at: (name) => (name === undefined ? `${PROC_FD}/${fd}` : `${PROC_FD}/${fd}/${name}`),
    close: async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/** Runs `work` with the anchored directory open, and closes it whatever happens. */
export async function withAnchored<T>(
  path: string,
  shown: string,
  work: (directory: AnchoredDirectory) => Promise<T>,
): Promise<T> {
  const directory = await openAnchored(path, shown);
  try {
    return await work(directory);
  } finally {
    await directory.close();
  }
}
