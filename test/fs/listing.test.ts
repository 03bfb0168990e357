import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { McpdError } from '../../src/errors.js';
import { DirectoryListings, DirectoryTooLarge, indexAfter } from '../../src/fs/listing.js';
import { RegexPool } from '../../src/fs/regex.js';
import { tree } from '../../src/fs/search.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS } from '../../src/policy/types.js';
import { allowedTarget, policyOver } from '../helpers/policy.js';
import { tempDir } from '../helpers/workspace.js';

let base: string;
let dir: string;
let outside: string;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir: base, cleanup } = await tempDir('mcpd-listing-'));
  dir = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(join(dir, 'big'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, 'outside-secret.md'), 'outside');
  policy = await policyOver(dir);
});
afterEach(async () => cleanup());

/**
 * Listings whose clock runs 10 s ahead, so the directories the test just wrote count as settled
 * (a directory changed within the last 2 s is never cached: see the racy-window test).
 */
const listingsOf = (options: Partial<ConstructorParameters<typeof DirectoryListings>[1]> = {}, skewMs = 10_000) =>
  new DirectoryListings(
    policy,
    { maxEntries: 100_000, maxCachedEntries: 200_000, linkTtlMs: 1000, ...options },
    () => Date.now() + skewMs,
  );

async function fill(count: number): Promise<void> {
  const names = Array.from({ length: count }, (_, i) => `file-${String(i).padStart(6, '0')}.md`);
  for (let i = 0; i < names.length; i += 500) {
    await Promise.all(names.slice(i, i + 500).map((name) => writeFile(join(dir, 'big', name), '')));
  }
}

describe('DirectoryListings', () => {
  it('reads a directory once for any number of concurrent callers, and again only when it changed', async () => {
    await fill(5000);
    const listings = listingsOf();
    const target = await allowedTarget(policy, 'list', 'big');
    const snapshots = await Promise.all(Array.from({ length: 32 }, () => listings.snapshot(target)));
    expect(new Set(snapshots).size).toBe(1);
    expect(listings.reads).toBe(1);
    expect(snapshots[0]?.names).toHaveLength(5000);
    await listings.snapshot(target);
    expect(listings.reads).toBe(1);
    await writeFile(join(dir, 'big', 'zz-new.md'), '');
    expect((await listings.snapshot(target)).names.at(-1)).toBe('zz-new.md');
    expect(listings.reads).toBe(2);
  });

  it('does not keep a directory that changed within the last 2 s: its mtime may not move on the next change', async () => {
    await fill(10);
    const listings = listingsOf({}, 0);
    const target = await allowedTarget(policy, 'list', 'big');
    await Promise.all([listings.snapshot(target), listings.snapshot(target)]);
    expect(listings.reads).toBe(1);
    await listings.snapshot(target);
    expect(listings.reads).toBe(2);
  });

  it('refuses a directory above maxEntries, and holds no more than maxCachedEntries', async () => {
    await fill(300);
    await mkdir(join(dir, 'small'));
    await writeFile(join(dir, 'small', 'a.md'), '');
    const tight = listingsOf({ maxEntries: 200 });
    await expect(tight.snapshot(await allowedTarget(policy, 'list', 'big'))).rejects.toBeInstanceOf(DirectoryTooLarge);
    const small = listingsOf({ maxCachedEntries: 250 });
    await small.snapshot(await allowedTarget(policy, 'list', 'big'));
    expect(small.size).toBe(0);
    await small.snapshot(await allowedTarget(policy, 'list', 'small'));
    expect(small.size).toBe(1);
  });

  it('pages by binary search on the sorted names', async () => {
    await fill(1000);
    const snapshot = await listingsOf().snapshot(await allowedTarget(policy, 'list', 'big'));
    expect(indexAfter(snapshot, 'file-000499.md')).toBe(500);
    expect(indexAfter(snapshot, '')).toBe(0);
    expect(indexAfter(snapshot, 'zzz')).toBe(1000);
  });

  it('never lists excluded names, nor links that leave the root', async () => {
    await writeFile(join(dir, '.env'), 'SECRET=1');
    await writeFile(join(dir, 'kept.md'), '');
    await symlink(join(outside, 'outside-secret.md'), join(dir, 'escape.md'));
    await symlink('kept.md', join(dir, 'alias.md'));
    const snapshot = await listingsOf().snapshot(await allowedTarget(policy, 'list', ''));
    expect(snapshot.names).toEqual(['alias.md', 'big', 'kept.md']);
  });

  it('lists the directory the policy ruled on, or nothing, when it is swapped for a link (M1)', async () => {
    await writeFile(join(dir, 'big', 'inside.md'), '');
    const target = await allowedTarget(policy, 'list', 'big');
    await rename(join(dir, 'big'), join(dir, 'moved-away'));
    await symlink(outside, join(dir, 'big'));
    const error = await listingsOf()
      .snapshot(target)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(McpdError);
    expect((error as McpdError).code).toBe('NOT_FOUND_OR_DENIED');
  });
});

describe('directory_tree within its budget', () => {
  it('reads no directory past the entry budget, and only peeks into the ones cut by depth', async () => {
    for (let i = 0; i < 40; i++) {
      await mkdir(join(dir, 'many', `d${String(i).padStart(2, '0')}`, 'inner'), { recursive: true });
    }
    const listings = listingsOf();
    const viewer = { policy, principal: ANONYMOUS, listings, regexes: new RegexPool(1) };
    const result = await tree(viewer, await allowedTarget(policy, 'list', 'many'), { maxDepth: 1, maxEntries: 5 });
    expect(result.entries).toBe(5);
    expect(result.truncatedByEntries).toBe(true);
    // One listing of "many"; a peek into each of the five directories shown, and none beyond.
    expect(listings.reads).toBe(1);
    expect(listings.peeks).toBeLessThanOrEqual(5);
  });
});
