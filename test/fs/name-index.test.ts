import { chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSystemWorkers } from '../../src/fs/fsWorkers.js';
import { DirectoryListings } from '../../src/fs/listing.js';
import { NameIndex } from '../../src/fs/nameIndex.js';
import { RegexPool } from '../../src/fs/regex.js';
import { nameMatcher, searchNames } from '../../src/fs/search.js';
import { type Viewer, WalkBudget } from '../../src/fs/walk.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS, type Root } from '../../src/policy/types.js';
import { allowedTarget, policyOver } from '../helpers/policy.js';
import { tempDir } from '../helpers/workspace.js';

/**
 * search_files from a name index must answer exactly what the walk answers (entries, order,
 * cursors, budgets), never show anything a walk could not, and never be staler than its bound.
 */
let dir: string;
let outside: string;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;
const fsWorkers = new FileSystemWorkers(2);
const { readers } = fsWorkers;
const regexes = new RegexPool(1);
const TTL_MS = 1000;
/** The clock the listings and the index read: 10 s ahead (the tree counts as settled), moved by the tests. */
let offset = 10_000;
const now = () => Date.now() + offset;

beforeEach(async () => {
  offset = 10_000;
  let base: string;
  ({ dir: base, cleanup } = await tempDir('mcpd-name-index-'));
  dir = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(join(outside, 'sub'), { recursive: true });
  await writeFile(join(outside, 'sub', 'outside-secret.md'), 'outside');
  for (const top of ['a', 'B', 'é', 'z z']) {
    for (let j = 0; j < 5; j++) {
      const deep = join(dir, top, `d${j}`, 'e');
      await mkdir(deep, { recursive: true });
      await writeFile(join(deep, `n${j}.md`), '');
      await writeFile(join(dir, top, `d${j}`, `file ${j}.txt`), '');
      await writeFile(join(dir, top, `d${j}`, `x${j}.lock`), '');
      if (j === 3) await writeFile(join(dir, top, `d${j}`, '.env'), 'SECRET=1');
    }
  }
  await symlink(join(dir, 'a'), join(dir, 'link-in'));
  policy = await policyOver(dir);
});
afterEach(async () => cleanup());
afterAll(async () => {
  await fsWorkers.close();
  await regexes.close();
});

function viewerWith(withIndex: boolean): Viewer & { index?: NameIndex } {
  const listings = new DirectoryListings(
    policy,
    { maxEntries: 100_000, maxCachedEntries: 200_000, linkTtlMs: TTL_MS, readers },
    now,
  );
  const index = withIndex
    ? new NameIndex(listings, readers, policy, { maxEntries: 100_000, ttlMs: TTL_MS }, now)
    : undefined;
  return { policy, principal: ANONYMOUS, listings, regexes, ...(index ? { index } : {}) };
}

async function search(
  viewer: Viewer,
  pattern: string,
  options: { start?: string; limit?: number; maxEntries?: number; after?: string } = {},
) {
  const start = await allowedTarget(policy, 'list', options.start ?? '');
  const budget = new WalkBudget(options.maxEntries ?? 100_000);
  const result = await searchNames(viewer, [start], nameMatcher(pattern), {
    limit: options.limit ?? 1000,
    budget,
    ...(options.after === undefined ? {} : { resume: { start: 0, after: options.after } }),
  });
  return {
    paths: result.matches.map((entry) => `${entry.relPath} ${entry.type}${entry.symlink ? ' link' : ''} ${entry.uri}`),
    next: result.next?.after,
    visited: budget.visited,
    truncated: budget.truncated,
  };
}

/** A viewer whose index has been built (the first search walks and starts the build). */
async function indexed(): Promise<Viewer & { index: NameIndex }> {
  const viewer = viewerWith(true) as Viewer & { index: NameIndex };
  await search(viewer, '*.md');
  await viewer.index.settled();
  expect(viewer.index.roots).toEqual(['r']);
  return viewer;
}

describe('search from a name index', () => {
  it('answers every search exactly as the walk does: entries, order, cursors, budgets', async () => {
    const walked = viewerWith(false);
    const viewer = await indexed();
    const cases: Parameters<typeof search>[2][] = [
      {},
      { start: 'B' },
      { start: 'z z/d2' },
      { limit: 3 },
      { limit: 7, start: 'a' },
      { maxEntries: 10 },
      { maxEntries: 57, limit: 2 },
    ];
    for (const pattern of ['*.md', '*.lock', 'file', '**/e/*', 'd?', '*', 'nothing-matches']) {
      for (const options of cases) {
        const expected = await search(walked, pattern, options);
        expect(await search(viewer, pattern, options), `${pattern} ${JSON.stringify(options)}`).toEqual(expected);
        // Page on from the cursor: same pages.
        if (expected.next !== undefined) {
          const page = { ...options, after: expected.next };
          expect(await search(viewer, pattern, page)).toEqual(await search(walked, pattern, page));
        }
      }
    }
    expect(viewer.index.builds).toBe(1);
    const all = await search(viewer, '*');
    expect(all.paths.some((line) => line.includes('.env'))).toBe(false);
    expect(all.paths).toContain(`link-in directory link ${policy.roots[0]?.uri}/link-in`);
  });

  it('is never staler than its bound: changes behind its back show once the bound has passed', async () => {
    // A link that reaches back inside through a link outside the root: shown while it does.
    await symlink(join(dir, 'B'), join(outside, 'back'));
    await symlink(join(outside, 'back'), join(dir, 'a', 'd2', 'via-outside'));
    const viewer = await indexed();
    expect((await search(viewer, 'via-outside')).paths).toHaveLength(1);
    const walked = viewerWith(false);
    const before = await search(viewer, '*');
    // Behind mcpd's back: a new file, a deletion, a rename, a directory swapped for a link out, a chmod.
    await writeFile(join(dir, 'B', 'new.md'), '');
    await rm(join(dir, 'a', 'd0', 'x0.lock'));
    await rename(join(dir, 'é', 'd1'), join(dir, 'é', 'renamed'));
    await rename(join(dir, 'z z', 'd4'), join(dir, 'z z-d4-away'));
    await symlink(outside, join(dir, 'z z', 'd4'));
    // A mode change moves a directory's ctime, not its names: seen as a change all the same.
    await chmod(join(dir, 'a', 'd1'), 0o700);
    // The link outside now leads elsewhere outside: no directory of the root changed.
    await rm(join(outside, 'back'));
    await symlink(join(outside, 'sub'), join(outside, 'back'));
    // Within the bound, the index may answer as it was; it never shows what lies outside.
    const within = await search(viewer, '*');
    expect(within.paths).toEqual(before.paths);
    expect(within.paths.some((line) => line.includes('outside-secret'))).toBe(false);
    // Past it, every change is seen (the changed tree is walked, and counts as settled 10 s later).
    offset += TTL_MS + 1;
    const after = await search(viewer, '*');
    offset += 10_000;
    expect(after).toEqual(await search(walked, '*'));
    expect(after.paths.some((line) => line.startsWith('B/new.md '))).toBe(true);
    expect(after.paths.some((line) => line.startsWith('a/d0/x0.lock '))).toBe(false);
    expect(after.paths.some((line) => line.startsWith('é/renamed '))).toBe(true);
    expect(after.paths.some((line) => line.includes('outside-secret'))).toBe(false);
    expect(after.paths.some((line) => line.includes('via-outside'))).toBe(false);
    // And the next index is built from the changed tree.
    await viewer.index.settled();
    expect(await search(viewer, '*')).toEqual(await search(walked, '*'));
  });

  it('forgets a root changed through mcpd at once, and indexes no tree changed within the racy window', async () => {
    const viewer = await indexed();
    await writeFile(join(dir, 'a', 'made-by-a-tool.md'), '');
    viewer.index.forget(policy.roots[0] as Root);
    expect((await search(viewer, 'made-by-a-tool.md')).paths).toHaveLength(1);
    // A tree that changed just now (by the clock the index reads) is walked, not indexed.
    offset = 0;
    await writeFile(join(dir, 'B', 'just-now.md'), '');
    const fresh = viewerWith(true) as Viewer & { index: NameIndex };
    await search(fresh, '*.md');
    await fresh.index.settled();
    expect(fresh.index.roots).toEqual([]);
    expect(fresh.index.builds).toBe(0);
  });
});
