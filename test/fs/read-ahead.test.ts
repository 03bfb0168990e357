import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSystemWorkers } from '../../src/fs/fsWorkers.js';
import { DirectoryListings } from '../../src/fs/listing.js';
import { RegexPool } from '../../src/fs/regex.js';
import { type Viewer, WalkBudget, walk } from '../../src/fs/walk.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS } from '../../src/policy/types.js';
import { allowedTarget, policyOver } from '../helpers/policy.js';
import { tempDir } from '../helpers/workspace.js';

/**
 * Walks read ahead by the reader workers (batches of directories, queued in walk order) must see
 * exactly what a walk reading one directory at a time sees: same entries, same order, same resume
 * points, the same refusals when a directory is swapped for a link.
 */
let dir: string;
let outside: string;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;
const fsWorkers = new FileSystemWorkers(2);
const { readers } = fsWorkers;
const regexes = new RegexPool(1);

beforeEach(async () => {
  let base: string;
  ({ dir: base, cleanup } = await tempDir('mcpd-read-ahead-'));
  dir = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, 'outside-secret.md'), 'outside');
  // A deterministic tree: wide and deep, names that sort differently by code unit and by locale,
  // excluded files, a link inside and one leading out.
  const names = ['a', 'B', 'é', 'z z', '日本', '0'];
  for (const [i, first] of names.entries()) {
    for (let j = 0; j < 4; j++) {
      const deep = join(dir, first, `d${j}`, `e${(i + j) % 3}`, 'f');
      await mkdir(deep, { recursive: true });
      await writeFile(join(deep, `n${j}.md`), '');
      await writeFile(join(dir, first, `d${j}`, `file ${j}.txt`), '');
      if (j === 2) await writeFile(join(dir, first, `d${j}`, '.env'), 'SECRET=1');
    }
  }
  await symlink(join(dir, 'a'), join(dir, 'link-in'));
  await symlink(outside, join(dir, 'link-out'));
  policy = await policyOver(dir);
});
afterEach(async () => cleanup());
afterAll(async () => {
  await fsWorkers.close();
  await regexes.close();
});

const viewerOf = (withReaders: boolean): Viewer => ({
  policy,
  principal: ANONYMOUS,
  regexes,
  listings: new DirectoryListings(
    policy,
    { maxEntries: 100_000, maxCachedEntries: 200_000, linkTtlMs: 1000, ...(withReaders ? { readers } : {}) },
    () => Date.now() + 10_000,
  ),
});

async function paths(viewer: Viewer, options: { after?: string; maxDepth?: number; max?: number } = {}) {
  const start = await allowedTarget(policy, 'list', '');
  const seen: string[] = [];
  const budget = new WalkBudget(options.max ?? 100_000);
  for await (const entry of walk(viewer, start, {
    budget,
    ...(options.after === undefined ? {} : { after: options.after }),
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
  })) {
    seen.push(`${entry.depth} ${entry.relPath} ${entry.type}${entry.symlink ? ' link' : ''}`);
  }
  return seen;
}

describe('walks read ahead by workers', () => {
  it('see the same entries in the same order as a walk reading one directory at a time', async () => {
    const expected = await paths(viewerOf(false));
    expect(expected.length).toBeGreaterThan(100);
    expect(expected.some((line) => line.includes('.env') || line.includes('outside-secret'))).toBe(false);
    expect(await paths(viewerOf(true))).toEqual(expected);
    // Warm: the second walk of the same listings takes the cached snapshots the readers vouch for.
    const warm = viewerOf(true);
    await paths(warm);
    expect(await paths(warm)).toEqual(expected);
    for (const maxDepth of [1, 2, 3]) {
      expect(await paths(viewerOf(true), { maxDepth })).toEqual(await paths(viewerOf(false), { maxDepth }));
    }
  });

  it('resume exactly after any path, and stop at the budget', async () => {
    const all = await paths(viewerOf(false));
    for (const index of [0, 1, 7, 40, 99, all.length - 2]) {
      const relPath = (all[index] as string).replace(/^\d+ /, '').replace(/ (file|directory|other)( link)?$/, '');
      expect(await paths(viewerOf(true), { after: relPath })).toEqual(all.slice(index + 1));
    }
    expect(await paths(viewerOf(true), { max: 25 })).toEqual(all.slice(0, 25));
  });

  it('read a directory with links again once their time is up (it once looped on the expired snapshot)', async () => {
    let skew = 10_000;
    const listings = new DirectoryListings(
      policy,
      { maxEntries: 100_000, maxCachedEntries: 200_000, linkTtlMs: 1000, readers },
      () => Date.now() + skew,
    );
    const root = await allowedTarget(policy, 'list', '');
    const first = await listings.snapshot(root);
    expect(first.links.size).toBe(1);
    const reads = listings.reads;
    expect(await listings.snapshot(root)).toBe(first);
    expect(listings.reads).toBe(reads);
    skew += 5000;
    const again = await listings.snapshot(root);
    expect(listings.reads).toBe(reads + 1);
    expect(again.names).toEqual(first.names);
  });

  it('never read a directory whose path leads through a link swapped in after it was queued', async () => {
    const viewer = viewerOf(true);
    const queued = await allowedTarget(policy, 'list', 'B/d0');
    // The outside holds the same names, so a read that followed the swapped link would find them.
    await mkdir(join(outside, 'd0'));
    await writeFile(join(outside, 'd0', 'outside-secret.md'), 'outside');
    await rename(join(dir, 'B'), join(dir, 'B-away'));
    await symlink(outside, join(dir, 'B'));
    expect(await readers.read([{ path: queued.absPath }], 100)).toEqual([{ error: 'MOVED' }]);
    const [snapshot] = viewer.listings.readMany([queued]);
    await expect(snapshot).rejects.toMatchObject({ code: 'NOT_FOUND_OR_DENIED' });
    // And a walk from the top shows the link as what it is (outside: not shown), never its contents.
    const all = await paths(viewer);
    expect(all.some((line) => line.includes('outside-secret'))).toBe(false);
    expect(all.some((line) => line.includes(' B/'))).toBe(false);
  });
});
