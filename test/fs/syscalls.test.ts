import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileSystemWorkers } from '../../src/fs/fsWorkers.js';
import { tempDir } from '../helpers/workspace.js';

let dir: string;
let cleanup: () => Promise<void>;
const fsWorkers = new FileSystemWorkers(2);
const workers = fsWorkers.syscalls;

beforeAll(async () => {
  const made = await tempDir('mcpd-syscalls-');
  cleanup = made.cleanup;
  dir = made.dir;
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub/small.txt'), 'small');
  await writeFile(join(dir, 'sub/exact.bin'), Buffer.alloc(1000, 7));
  await symlink(join(dir, 'sub'), join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
});

afterAll(async () => {
  await fsWorkers.close();
  await cleanup();
});

describe('file workers', () => {
  it('resolve the common case and leave every other one to the main thread', async () => {
    expect(await workers.resolve(join(dir, 'link/small.txt'), 'follow')).toEqual({
      canonical: join(dir, 'sub/small.txt'),
      kind: 'file',
    });
    expect(await workers.resolve(join(dir, 'link'), 'nofollow-last')).toEqual({
      canonical: join(dir, 'link'),
      kind: 'symlink',
    });
    expect(await workers.resolve(join(dir, 'missing/file'), 'follow')).toEqual({ fallback: true });
    expect(await workers.resolve(join(dir, 'sub/small.txt/below'), 'nofollow-last')).toEqual({ fallback: true });
  });

  it('read a regular file only up to the cap they are given, and describe it either way', async () => {
    const exact = await workers.open(join(dir, 'sub/exact.bin'), 1000);
    expect('data' in exact && exact.data?.equals(Buffer.alloc(1000, 7))).toBe(true);
    const above = await workers.open(join(dir, 'sub/exact.bin'), 999);
    expect('stats' in above && above.stats.size).toBe(1000n);
    expect('data' in above).toBe(false);
    const statOnly = await workers.open(join(dir, 'sub/small.txt'), -1);
    expect('stats' in statOnly && statOnly.stats.isFile()).toBe(true);
    expect('data' in statOnly).toBe(false);
  });

  it('never follow a link in the last component, and never wait on a FIFO', async () => {
    expect(await workers.open(join(dir, 'link'), 1 << 20)).toEqual({ error: 'ELOOP' });
    const fifo = await workers.open(join(dir, 'fifo'), 1 << 20);
    expect('stats' in fifo && !fifo.stats.isFile() && !fifo.stats.isDirectory()).toBe(true);
    expect('data' in fifo).toBe(false);
  });

  it('refuse a descriptor that is not the path asked for (reached through a link on the way)', async () => {
    // The canonical path of the file is sub/small.txt; asking for link/small.txt opens the same
    // file through a link, which the descriptor's own path gives away.
    expect(await workers.open(join(dir, 'link/small.txt'), 1 << 20)).toEqual({ error: 'MOVED' });
  });

  it('answer each of many concurrent requests with its own file, gathered into few messages', async () => {
    const names = Array.from({ length: 300 }, (_, i) => `many-${i}.txt`);
    await Promise.all(names.map((name) => writeFile(join(dir, name), name)));
    const opened = await Promise.all(names.map((name) => workers.open(join(dir, name), 1 << 20)));
    expect(opened.map((one) => ('data' in one ? one.data?.toString() : one))).toEqual(names);
  });

  it('fail what is asked once they are closed, rather than hang', async () => {
    const closed = new FileSystemWorkers(1);
    await closed.close();
    await expect(closed.syscalls.open(join(dir, 'sub/small.txt'), 10)).rejects.toThrow();
  });
});
