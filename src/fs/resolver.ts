import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EntryKind, FollowMode, PathResolver, Resolution } from '../policy/types.js';
import type { SyscallWorkers } from './syscalls.js';

type Errno = NodeJS.ErrnoException;

function kindOf(stats: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryKind {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  return 'other';
}

function failure(error: unknown): Resolution | undefined {
  switch ((error as Errno).code) {
    case 'ELOOP':
      return { ok: false, reason: 'loop' };
    case 'ENOTDIR':
      return { ok: false, reason: 'not-a-directory' };
    case 'ENAMETOOLONG':
      return { ok: false, reason: 'name-too-long' };
    case 'ENOENT':
      return undefined;
    default:
      return { ok: false, reason: 'io' };
  }
}

/**
 * realpath-based canonicalisation for the policy. A path that does not exist yet is canonicalised
 * through its nearest existing ancestor; a dangling symlink on the way is refused rather than
 * guessed at, since creating through it would land wherever it points.
 */
export class NodePathResolver implements PathResolver {
  /** With workers, the common case (everything exists) is one message instead of two or three round trips. */
  constructor(private readonly workers?: SyscallWorkers) {}

  async resolve(absolutePath: string, mode: FollowMode): Promise<Resolution> {
    if (this.workers) {
      const quick = await this.workers.resolve(absolutePath, mode);
      if (!('fallback' in quick)) return { ok: true, ...quick };
    }
    if (mode === 'nofollow-last') return this.resolveEntry(absolutePath);
    return this.resolveFollowing(absolutePath);
  }

  private async resolveEntry(absolutePath: string): Promise<Resolution> {
    const parent = dirname(absolutePath);
    if (parent === absolutePath) return this.resolveFollowing(absolutePath);
    const resolvedParent = await this.resolveFollowing(parent);
    if (!resolvedParent.ok) return resolvedParent;
    const canonical = join(resolvedParent.canonical, basename(absolutePath));
    if (resolvedParent.kind === 'missing') return { ok: true, canonical, kind: 'missing' };
    if (resolvedParent.kind !== 'directory') return { ok: false, reason: 'not-a-directory' };
    try {
      return { ok: true, canonical, kind: kindOf(await lstat(canonical)) };
    } catch (error) {
      return failure(error) ?? { ok: true, canonical, kind: 'missing' };
    }
  }

  private async resolveFollowing(absolutePath: string): Promise<Resolution> {
    try {
      const canonical = await realpath(absolutePath);
      return { ok: true, canonical, kind: kindOf(await stat(canonical)) };
    } catch (error) {
      const failed = failure(error);
      if (failed) return failed;
    }
    // Missing: walk up to the nearest ancestor that exists and re-attach the missing tail.
    const tail: string[] = [];
    let current = absolutePath;
    for (;;) {
      try {
        await lstat(current);
        // It exists, yet realpath said ENOENT: a symlink to nothing (or one swapped away meanwhile).
        return { ok: false, reason: 'dangling-symlink' };
      } catch (error) {
        const failed = failure(error);
        if (failed) return failed;
      }
      tail.unshift(basename(current));
      const parent = dirname(current);
      if (parent === current) return { ok: false, reason: 'io' };
      current = parent;
      try {
        const canonicalParent = await realpath(current);
        const parentKind = kindOf(await stat(canonicalParent));
        if (parentKind !== 'directory') return { ok: false, reason: 'not-a-directory' };
        return { ok: true, canonical: join(canonicalParent, ...tail), kind: 'missing' };
      } catch (error) {
        const failed = failure(error);
        if (failed) return failed;
      }
    }
  }
}
