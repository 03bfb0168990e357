import { randomBytes } from 'node:crypto';
import { type BigIntStats, constants } from 'node:fs';
import { link, lstat, mkdir, open, opendir, rename, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { McpdError, notFoundOrDenied } from '../errors.js';
import type { Root, Target } from '../policy/types.js';
import { type AnchoredDirectory, openAnchored, openChild, withAnchored } from './anchor.js';
import { describe, etagOf, type FileInfo } from './files.js';

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

/** lstat of an entry, or null when it does not exist. */
async function entryStats(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * What the file system refused a change with, as the client's error: full (nothing was written),
 * or not permitted to mcpd itself (read-only mount, permissions). Anything else is unexpected.
 */
function refusedByFileSystem(error: unknown, target: Target): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new McpdError('NO_SPACE', `${target.display}: the file system is full; nothing was written`);
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new McpdError(
      'WRITE_DENIED',
      `${target.display}: the file system refused the change (${code === 'EROFS' ? 'read-only' : 'permission denied'})`,
    );
  }
  return error;
}

/** The target's parent, held by descriptor; a parent that is gone is the client's NOT_FOUND. */
async function withParent<T>(target: Target, work: (parent: AnchoredDirectory, name: string) => Promise<T>) {
  if (target.relPath === '')
    throw new McpdError('WRITE_DENIED', `${target.display}: the root itself cannot be changed`);
  try {
    return await withAnchored(dirname(target.absPath), target.display, (parent) =>
      work(parent, basename(target.absPath)),
    );
  } catch (error) {
    throw refusedByFileSystem(error, target);
  }
}

/**
 * Atomic replace: write a temp file beside the target, fsync it, then rename over the target and
 * fsync the directory. A failure at any step leaves the old file exactly as it was. With
 * `createOnly`, link(2) publishes the temp file only if the name is still free. Every step is
 * named through the parent's descriptor, so the temp file and the result can only ever be in the
 * directory the policy ruled on.
 */
export async function writeFileAtomic(
  target: Target,
  data: Uint8Array,
  options: WriteOptions = {},
): Promise<WriteOutcome> {
  return locks.run(target.absPath, () =>
    withParent(target, async (parent, name) => {
      const existing = await entryStats(parent.at(name));
      if (existing?.isDirectory()) throw new McpdError('NOT_A_FILE', `${target.display} is a directory`);
      if (existing && options.createOnly) throw new McpdError('ALREADY_EXISTS', `${target.display} already exists`);
      if (options.expectedEtag !== undefined) {
        const actual = existing?.isFile() ? etagOf(existing) : null;
        if (actual !== options.expectedEtag) {
          throw new McpdError(
            'CONFLICT',
            actual === null
              ? `${target.display} does not exist, so it cannot match the expected ETag`
              : `${target.display} changed since it was read (ETag is now ${actual}); read it again and retry`,
            { currentEtag: actual },
          );
        }
      }

      const tempName = `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
      const handle = await open(
        parent.at(tempName),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      let published = false;
      let own: BigIntStats;
      try {
        await handle.writeFile(data);
        await handle.chmod(existing?.isFile() ? Number(existing.mode) & 0o7777 : 0o644);
        await handle.sync();
        own = await handle.stat({ bigint: true });
        await handle.close();
        if (options.createOnly) {
          try {
            await link(parent.at(tempName), parent.at(name));
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
              throw new McpdError('ALREADY_EXISTS', `${target.display} already exists`);
            }
            throw error;
          }
          published = true;
          await unlink(parent.at(tempName));
        } else {
          try {
            await rename(parent.at(tempName), parent.at(name));
          } catch (error) {
            // A directory made at that name since it was looked at (a concurrent create_directory).
            const code = (error as NodeJS.ErrnoException).code;
            if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
              throw new McpdError('NOT_A_FILE', `${target.display} is a directory`);
            }
            throw error;
          }
          published = true;
        }
        await syncDirectory(parent);
      } finally {
        await handle.close().catch(() => {});
        if (!published) await unlink(parent.at(tempName)).catch(() => {});
      }
      // Stat the published entry through the same descriptor (a rename moves its ctime, which the
      // ETag covers). If another call removed or replaced it in between, the write still happened:
      // it is described as written, not as whatever stands there now, and not as a failure.
      const there = await lstat(parent.at(name), { bigint: true }).catch(() => null);
      const written = there && there.dev === own.dev && there.ino === own.ino ? there : own;
      return { info: describe(target, written), created: existing === null };
    }),
  );
}

async function syncDirectory(directory: AnchoredDirectory): Promise<void> {
  try {
    await directory.handle.sync();
  } catch (error) {
    // Some file systems refuse fsync on directories; the rename itself is still atomic there.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  }
}

/**
 * Creates a directory. With `recursive`, the path is walked from the root one directory at a
 * time through descriptors, and every missing ancestor it would create must pass `mayCreate`
 * (root-relative path), so mkdir -p can neither follow a symlink out of the root nor create what
 * a direct mkdir could not.
 */
export async function createDirectory(
  target: Target,
  recursive: boolean,
  mayCreate: (relPath: string) => boolean,
): Promise<{ created: boolean }> {
  if (!recursive) {
    return withParent(target, async (parent, name) => ({ created: await makeChild(parent, name, target) }));
  }
  const names = target.relPath.split('/');
  // The directory the walk is in; replaced (and the previous one closed) as it goes down.
  const walker = { current: await openAnchored(target.root.canonicalPath, `${target.root.name}:.`) };
  try {
    return await makeDirectories(names, walker, target, mayCreate);
  } catch (error) {
    throw refusedByFileSystem(error, target);
  } finally {
    await walker.current.close();
  }
}

/** mkdir -p from the root, one descriptor at a time, as createDirectory describes. */
async function makeDirectories(
  names: readonly string[],
  walker: { current: AnchoredDirectory },
  target: Target,
  mayCreate: (relPath: string) => boolean,
): Promise<{ created: boolean }> {
  const enter = async (name: string) => {
    const next = await openChild(walker.current, name, target.display);
    await walker.current.close();
    walker.current = next;
  };
  const last = names.length - 1;
  // Down through what exists; then judge every ancestor still missing before making any of them.
  let depth = 0;
  for (; depth <= last; depth++) {
    const name = names[depth] as string;
    const stats = await entryStats(walker.current.at(name));
    if (stats === null) break;
    if (!stats.isDirectory()) {
      throw depth === last
        ? new McpdError('ALREADY_EXISTS', `${target.display} exists and is not a directory`)
        : new McpdError(
            'NOT_A_DIRECTORY',
            `${target.root.name}:${names.slice(0, depth + 1).join('/')} is not a directory`,
          );
    }
    if (depth === last) return { created: false };
    await enter(name);
  }
  for (let missing = depth; missing < last; missing++) {
    const relPath = names.slice(0, missing + 1).join('/');
    if (!mayCreate(relPath)) {
      throw new McpdError('WRITE_DENIED', `${target.root.name}:${relPath}: creating this directory is not permitted`);
    }
  }
  let created = false;
  for (; depth <= last; depth++) {
    const name = names[depth] as string;
    created = (await makeChild(walker.current, name, target)) || created;
    if (depth < last) await enter(name);
  }
  return { created };
}

/** mkdir of one name inside an anchored directory; false when a directory is already there. */
async function makeChild(parent: AnchoredDirectory, name: string, target: Target): Promise<boolean> {
  try {
    await mkdir(parent.at(name));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const stats = await entryStats(parent.at(name));
    if (stats?.isDirectory()) return false;
    throw new McpdError('ALREADY_EXISTS', `${target.display} exists and is not a directory`);
  }
}

/**
 * Moves a file or directory, between two parents held by descriptor. Files move with
 * link+unlink, which never replaces an existing destination; directories use rename after
 * checking the destination is free. `beforeMove` sees the source's kind first, so a caller can
 * judge what a directory would carry along.
 */
export async function moveEntry(
  source: Target,
  destination: Target,
  beforeMove: (kind: 'file' | 'directory' | 'other') => Promise<void> = async () => {},
): Promise<void> {
  await withParent(source, (from, sourceName) =>
    withParent(destination, async (to, destinationName) => {
      const stats = await entryStats(from.at(sourceName));
      if (!stats) throw notFoundOrDenied(source.display);
      if (await entryStats(to.at(destinationName))) {
        throw new McpdError('ALREADY_EXISTS', `${destination.display} already exists`);
      }
      if (stats.isDirectory() && destination.absPath.startsWith(`${source.absPath}/`)) {
        throw new McpdError(
          'INVALID_ARGUMENT',
          `${source.display} cannot be moved into itself (${destination.display})`,
        );
      }
      await beforeMove(stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : 'other');
      try {
        if (stats.isDirectory()) {
          await rename(from.at(sourceName), to.at(destinationName));
        } else {
          await link(from.at(sourceName), to.at(destinationName));
          await unlink(from.at(sourceName));
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
          throw new McpdError('ALREADY_EXISTS', `${destination.display} already exists`);
        }
        if (code === 'ENOENT') throw notFoundOrDenied(source.display);
        // Only a directory moved into its own subtree, which the check above already refuses; kept
        // for a tree renamed between that check and the move.
        if (code === 'EINVAL') {
          throw new McpdError('INVALID_ARGUMENT', `${source.display} cannot be moved into itself`);
        }
        throw error;
      }
      await syncDirectory(from);
      if (to.path !== from.path) await syncDirectory(to);
    }),
  );
}

/** Deletes a file, a symlink (never its target) or an empty directory. */
export async function deleteEntry(target: Target): Promise<{ type: 'file' | 'directory' }> {
  return withParent(target, async (parent, name) => {
    const stats = await entryStats(parent.at(name));
    if (!stats) throw notFoundOrDenied(target.display);
    try {
      if (stats.isDirectory()) {
        await rmdir(parent.at(name));
        return { type: 'directory' as const };
      }
      await unlink(parent.at(name));
      return { type: 'file' as const };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new McpdError('DIRECTORY_NOT_EMPTY', `${target.display} is not empty; delete its contents first`);
      }
      if (code === 'ENOENT') throw notFoundOrDenied(target.display);
      throw error;
    }
  });
}

/**
 * Removes the temp files of writes that never finished (the process was killed between creating
 * and publishing them) from a root: `.mcpd-tmp-*` files not modified for `olderThanMs`, so another
 * replica's write in progress on a shared volume is left alone. Walks through descriptors, never
 * into a symlink, visiting at most `maxEntries` entries, and yields to the event loop as it goes.
 */
export async function removeStaleTempFiles(
  root: Root,
  options: {
    readonly olderThanMs: number;
    readonly maxEntries: number;
    readonly now?: () => number;
    readonly signal?: AbortSignal;
  },
): Promise<{ removed: number; visited: number }> {
  const now = options.now ?? (() => Date.now());
  let visited = 0;
  let removed = 0;
  const sweep = async (directory: AnchoredDirectory): Promise<void> => {
    const subdirectories: string[] = [];
    for await (const dirent of await opendir(directory.at(), { bufferSize: 256 })) {
      visited += 1;
      if (visited > options.maxEntries || options.signal?.aborted) return;
      if (visited % 256 === 0) await yieldToLoop();
      if (dirent.isDirectory()) subdirectories.push(dirent.name);
      else if (dirent.isFile() && dirent.name.startsWith(TEMP_PREFIX)) {
        const stats = await entryStats(directory.at(dirent.name));
        if (stats?.isFile() && now() - Number(stats.mtimeMs) >= options.olderThanMs) {
          await unlink(directory.at(dirent.name)).then(
            () => {
              removed += 1;
            },
            () => {},
          );
        }
      }
    }
    for (const name of subdirectories) {
      if (visited > options.maxEntries) return;
      const child = await openChild(directory, name, `${root.name}:${name}`).catch(() => null);
      if (!child) continue;
      try {
        await sweep(child);
      } finally {
        await child.close();
      }
    }
  };
  const top = await openAnchored(root.canonicalPath, `${root.name}:.`);
  try {
    await sweep(top);
  } finally {
    await top.close();
  }
  return { removed, visited };
}
