import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileSystemWorkers } from '../../src/fs/fsWorkers.js';
import { pause, sliceSpent, sortInSlices } from '../../src/slices.js';
import { tempDir } from '../helpers/workspace.js';

describe('sortInSlices', () => {
  it('sorts like Array.prototype.sort, stably, at every size around its run length', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 9000 }), async (keys) => {
        const items = keys.map((key, position) => ({ key, position }));
        const expected = [...items].sort((a, b) => a.key - b.key);
        const sorted = await sortInSlices([...items], (a, b) => a.key - b.key);
        expect(sorted).toEqual(expected);
      }),
      { numRuns: 40 },
    );
  });

  it('sorts 200,000 names in slices, giving the loop back between them', async () => {
    const names = Array.from({ length: 200_000 }, (_, i) => `n-${(i * 7919) % 200_000}`);
    let turns = 0;
    let sorting = true;
    const count = () => {
      turns += 1;
      if (sorting) setImmediate(count);
    };
    setImmediate(count);
    const sorted = await sortInSlices(names, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    sorting = false;
    expect(sorted).toEqual([...sorted].sort());
    // A sort that held the loop would let the counter run once at most.
    expect(turns).toBeGreaterThan(2);
  });
});

describe('pause', () => {
  it('lets work run on while the slice lasts, and sends every caller to a later turn once it is spent', async () => {
    await new Promise((resolve) => setImmediate(resolve));
    // Spend the slice.
    while (!sliceSpent()) {
      // busy
    }
    let probeRan = false;
    setImmediate(() => {
      probeRan = true;
    });
    const waits = Array.from({ length: 5 }, () => pause());
    expect(waits.every((wait) => wait instanceof Promise)).toBe(true);
    await Promise.all(waits);
    // The probe was queued before any waiter resumed: the loop turned before they went on.
    expect(probeRan).toBe(true);
  });
});

describe('StatPool', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const workers = new FileSystemWorkers(1);
  const pool = workers.stats;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('mcpd-stats-'));
    await writeFile(join(dir, 'a.md'), 'hello');
    await mkdir(join(dir, 'sub'));
    await symlink('a.md', join(dir, 'link.md'));
    await link(join(dir, 'a.md'), join(dir, 'second.md'));
  });
  afterAll(async () => {
    await workers.close();
    await cleanup();
  });

  it('stats files, directories, links (not followed) and missing names in one batch', async () => {
    const [file, sub, linked, second, missing] = await pool.stat(dir, ['a.md', 'sub', 'link.md', 'second.md', 'nope']);
    expect(file).toMatchObject({ isFile: true, isDirectory: false, size: 5, nlink: 2 });
    expect(sub).toMatchObject({ isFile: false, isDirectory: true });
    // The link itself, never its target.
    expect(linked).toMatchObject({ isFile: false, isDirectory: false });
    expect(second).toMatchObject({ isFile: true, nlink: 2 });
    expect(missing).toBeUndefined();
    expect(file?.mtimeMs).toBeGreaterThan(0);
  });

  it('refuses work once closed', async () => {
    const closed = new FileSystemWorkers(1);
    await closed.close();
    await expect(closed.stats.stat(dir, ['a.md'])).rejects.toThrow(/shutting down/);
  });
});
