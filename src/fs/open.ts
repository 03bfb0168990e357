import { type BigIntStats, constants } from 'node:fs';
import { type FileHandle, open, readlink, stat } from 'node:fs/promises';
import { McpdError, notFoundOrDenied } from '../errors.js';
import type { Target } from '../policy/types.js';
import type { FileStats } from './syscalls.js';

const PROC_FD = '/proc/self/fd';

/**
 * Opens a decided target and proves that what was opened is what was decided. The policy ruled on
 * a canonical path; between that ruling and this open, a directory on the way could have been
 * swapped for a symlink. O_NOFOLLOW covers the last component; the descriptor's own path (Linux:
 * /proc/self/fd) or, elsewhere, its device and inode cover the rest.
 */
export async function openVerified(target: Target, flags: number = constants.O_RDONLY): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO (or a device) must never wait for a writer, which would hold one of
    // libuv's few threads, and with it every other file operation. Regular files ignore the flag.
    handle = await open(target.absPath, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw mapOpenError(error, target);
  }
  try {
    await verifyDescriptor(handle, target.absPath, target);
    return handle;
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

/**
 * Opens a decided target for reading its contents: a regular file, not a FIFO, socket or device
 * (anything else is answered as missing), and not a second name of a file when the root refuses
 * hard links. Returns the handle and its stats.
 */
export async function openRegularFile(target: Target): Promise<{ handle: FileHandle; stats: BigIntStats }> {
  const handle = await openVerified(target);
  try {
    const stats = await handle.stat({ bigint: true });
    checkRegularFile(stats, target);
    return { handle, stats };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

/** What may be read as contents: a regular file (not a FIFO, socket or device), and not a refused second name. */
export function checkRegularFile(stats: FileStats, target: Target): void {
  if (stats.isDirectory()) throw new McpdError('NOT_A_FILE', `${target.display} is a directory; use list_directory`);
  if (!stats.isFile()) throw notFoundOrDenied(target.display);
  if (isRefusedHardLink(stats, target)) throw notFoundOrDenied(target.display);
}

/**
 * A second name of a regular file, in a root that refuses them. Such a name may be a link to a
 * secret or to a file outside every root, so it is treated as missing: not read, not described.
 */
export function isRefusedHardLink(stats: { isFile(): boolean; nlink: number | bigint }, target: Target): boolean {
  return target.root.hardLinks === 'refuse' && stats.isFile() && Number(stats.nlink) > 1;
}

export async function verifyDescriptor(handle: FileHandle, expectedPath: string, target: Target): Promise<void> {
  const actual = await readlink(`${PROC_FD}/${handle.fd}`).catch(() => null);
  if (actual !== null) {
    if (actual !== expectedPath) throw notFoundOrDenied(target.display);
    return;
  }
  const [opened, named] = await Promise.all([handle.stat({ bigint: true }), stat(expectedPath, { bigint: true })]);
  if (opened.dev !== named.dev || opened.ino !== named.ino) throw notFoundOrDenied(target.display);
}

/** Open failures a client may see: all of them look like "not found or not permitted". */
export function mapOpenError(error: unknown, target: Target): Error {
  return HIDDEN_OPEN_ERRORS.has((error as NodeJS.ErrnoException).code ?? '')
    ? notFoundOrDenied(target.display)
    : (error as Error);
}

const HIDDEN_OPEN_ERRORS = new Set(['ENOENT', 'ELOOP', 'EACCES', 'EPERM', 'ENOTDIR']);

/** The same, for an open that failed in a worker (`code` is the errno code, or MOVED when the proof failed). */
export function openFailure(code: string, target: Target): Error {
  if (code === 'MOVED' || HIDDEN_OPEN_ERRORS.has(code)) return notFoundOrDenied(target.display);
  return Object.assign(new Error(`${code}: opening ${target.display} failed`), { code });
}
