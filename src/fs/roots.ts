import { realpath, stat } from 'node:fs/promises';
import type { RootConfig } from '../config/schema.js';
import { isWithin } from '../policy/paths.js';
import type { Root } from '../policy/types.js';

export interface RootProblem {
  readonly index: number;
  readonly message: string;
}

/**
 * Canonicalises configured roots once, at start-up (and on reload): every containment decision
 * compares against these realpaths. A root must exist, be a directory, and not overlap another.
 */
export async function canonicalizeRoots(
  configured: readonly RootConfig[],
): Promise<{ roots: Root[]; problems: RootProblem[] }> {
  const roots: Root[] = [];
  const problems: RootProblem[] = [];
  for (const [index, root] of configured.entries()) {
    try {
      const canonicalPath = await realpath(root.path);
      if (!(await stat(canonicalPath)).isDirectory()) {
        problems.push({ index, message: 'not a directory' });
        continue;
      }
      roots.push({ ...root, canonicalPath });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push({
        index,
        message: code === 'ENOENT' ? 'directory does not exist' : `cannot be resolved (${code ?? 'error'})`,
      });
    }
  }
  for (const [i, a] of roots.entries()) {
    for (const b of roots.slice(i + 1)) {
      if (isWithin(a.canonicalPath, b.canonicalPath) || isWithin(b.canonicalPath, a.canonicalPath)) {
        problems.push({
          index: configured.findIndex((root) => root.name === b.name),
          message: `overlaps root "${a.name}"; roots must not contain one another`,
        });
      }
    }
  }
  return { roots, problems };
}

/** The first root whose directory is gone or unreadable now (for readiness), or null. */
export async function unreachableRoot(
  roots: readonly { name: string; canonicalPath: string }[],
): Promise<string | null> {
  for (const root of roots) {
    try {
      if (!(await stat(root.canonicalPath)).isDirectory()) return root.name;
    } catch {
      return root.name;
    }
  }
  return null;
}
