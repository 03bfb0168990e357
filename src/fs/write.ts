import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, link, lstat, mkdir, open, realpath, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { McpdError, notFoundOrDenied } from '../errors.js';
import type { Target } from '../policy/types.js';
import { describe, etagOf, type FileInfo } from './files.js';
import { verifyDescriptor } from './open.js';

/** Temp files carry this prefix; the built-in excludes hide it from every listing. */
export const TEMP_PREFIX = '.mcpd-tmp-';

/**
 * Serialises writers of one path inside this process, so that "check the ETag, then replace"
 * cannot interleave with another write of the same file through this server.
 */
class PathLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(path) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.tails.set(path, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(path) === tail) this.tails.delete(path);
    }
  }
}

const locks = new PathLocks();

export interface WriteOptions {
  /** Fail with ALREADY_EXISTS instead of replacing an existing file. */
  readonly createOnly?: boolean;
  /** Replace only if the file's current ETag is this one (optimistic concurrency). */
  readonly expectedEtag?: string;
}

export interface WriteOutcome {
  readonly info: FileInfo;
  readonly created: boolean;
}

async function currentStats(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** The parent must still be the canonical directory the policy ruled on. */
async function assertParentUnchanged(target: Target): Promise<void> {
  const parent = dirname(target.absPath);
  const actual = await realpath(parent).catch(() => null);
  if (actual === null) {
    throw new McpdError('NOT_FOUND_OR_DENIED', `${target.uri}: the parent directory does not exist`);
  }
  if (actual !== parent) throw notFoundOrDenied(target.uri);
}

/**
 * Atomic replace: write a temp file beside the target, fsync it, then rename over the target and
 * fsync the directory. A failure at any step leaves the old file exactly as it was. With
 * `createOnly`, link(2) publishes the temp file only if the name is still free.
 */
export async function writeFileAtomic(
  target: Target,
  data: Uint8Array,
  options: WriteOptions = {},
): Promise<WriteOutcome> {
  return locks.run(target.absPath, async () => {
    await assertParentUnchanged(target);
    const existing = await currentStats(target.absPath);
    if (existing?.isDirectory()) throw new McpdError('NOT_A_FILE', `${target.uri} is a directory`);
    if (existing && options.createOnly) throw new McpdError('ALREADY_EXISTS', `${target.uri} already exists`);
    if (options.expectedEtag !== undefined) {
      const actual = existing?.isFile() ? etagOf(existing) : null;
      if (actual !== options.expectedEtag) {
        throw new McpdError(
          'CONFLICT',
          actual === null
            ? `${target.uri} does not exist, so it cannot match the expected ETag`
            : `${target.uri} changed since it was read (ETag is now ${actual}); read it again and retry`,
          { currentEtag: actual },
        );
      }
    }

    const directory = dirname(target.absPath);
    const tempPath = join(directory, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const handle = await open(
      tempPath,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    let published = false;
    try {
      await verifyDescriptor(handle, tempPath, target);
      await handle.writeFile(data);
      if (existing?.isFile()) await chmod(tempPath, Number(existing.mode) & 0o7777);
      else await chmod(tempPath, 0o644);
      await handle.sync();
      await handle.close();
      if (options.createOnly) {
        try {
          await link(tempPath, target.absPath);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new McpdError('ALREADY_EXISTS', `${target.uri} already exists`);
          }
          throw error;
        }
        await unlink(tempPath);
      } else {
        await rename(tempPath, target.absPath);
      }
      published = true;
      await syncDirectory(directory);
    } finally {
      await handle.close().catch(() => {});
      if (!published) await unlink(tempPath).catch(() => {});
    }
    return { info: describe(target, await stat(target.absPath, { bigint: true })), created: existing === null };
  });
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems refuse fsync on directories; the rename itself is still atomic there.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Creates a directory. With `recursive`, every missing ancestor it would create must pass
 * `mayCreate` (root-relative path), so mkdir -p cannot create what a direct mkdir could not.
 */
export async function createDirectory(
  target: Target,
  recursive: boolean,
  mayCreate: (relPath: string) => boolean,
): Promise<{ created: boolean }> {
  const existing = await currentStats(target.absPath);
  if (existing?.isDirectory()) return { created: false };
  if (existing) throw new McpdError('ALREADY_EXISTS', `${target.uri} exists and is not a directory`);
  if (!recursive) await assertParentUnchanged(target);
  if (recursive) {
    const segments = target.relPath.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const relPath = segments.slice(0, depth).join('/');
      const stats = await currentStats(join(target.root.canonicalPath, relPath));
      if (stats && !stats.isDirectory()) throw new McpdError('NOT_A_DIRECTORY', `${relPath} is not a directory`);
      if (!stats && !mayCreate(relPath)) {
        throw new McpdError('WRITE_DENIED', `${target.root.name}:${relPath}: creating this directory is not permitted`);
      }
    }
  }
  try {
    await mkdir(target.absPath, { recursive });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new McpdError('NOT_FOUND_OR_DENIED', `${target.uri}: the parent directory does not exist (use recursive)`);
    }
    if (code === 'EEXIST') return { created: false };
    throw error;
  }
  return { created: true };
}

/**
 * Moves a file or directory. Files move with link+unlink, which never replaces an existing
 * destination; directories use rename after checking the destination is free.
 */
export async function moveEntry(source: Target, destination: Target): Promise<void> {
  await assertParentUnchanged(source);
  const stats = await currentStats(source.absPath);
  if (!stats) throw notFoundOrDenied(source.uri);
  if (await currentStats(destination.absPath)) {
    throw new McpdError('ALREADY_EXISTS', `${destination.uri} already exists`);
  }
  await assertParentUnchanged(destination);
  try {
    if (stats.isDirectory()) {
      await rename(source.absPath, destination.absPath);
    } else {
      await link(source.absPath, destination.absPath);
      await unlink(source.absPath);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EXDEV') {
      throw new McpdError(
        'UNSUPPORTED',
        'source and destination are on different file systems; copy and delete instead',
      );
    }
    if (code === 'EEXIST' || code === 'ENOTEMPTY') {
      throw new McpdError('ALREADY_EXISTS', `${destination.uri} already exists`);
    }
    if (code === 'ENOENT') throw notFoundOrDenied(source.uri);
    throw error;
  }
}

/** Deletes a file, a symlink (never its target) or an empty directory. */
export async function deleteEntry(target: Target): Promise<{ type: 'file' | 'directory' }> {
  await assertParentUnchanged(target);
  const stats = await currentStats(target.absPath);
  if (!stats) throw notFoundOrDenied(target.uri);
  try {
    if (stats.isDirectory()) {
      await rmdir(target.absPath);
      return { type: 'directory' };
    }
    await unlink(target.absPath);
    return { type: 'file' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new McpdError('DIRECTORY_NOT_EMPTY', `${target.uri} is not empty; delete its contents first`);
    }
    if (code === 'ENOENT') throw notFoundOrDenied(target.uri);
    throw error;
  }
}
