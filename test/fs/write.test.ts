import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ErrorCode, McpdError } from '../../src/errors.js';
import { etagOf } from '../../src/fs/files.js';
import { createDirectory, deleteEntry, moveEntry, TEMP_PREFIX, writeFileAtomic } from '../../src/fs/write.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS, type Operation, type Target } from '../../src/policy/types.js';
import { allowedTarget, policyOver } from '../helpers/policy.js';
import { type RunResult, runCommand } from '../helpers/process.js';
import { REPO, tempDir } from '../helpers/workspace.js';

const FIXTURE = join(REPO, 'test/fs/fixtures/write-child.ts');

let base: string;
/** The root the policy rules on. */
let dir: string;
/** A sibling of the root, on the same file system: never to be touched by anything below. */
let outside: string;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir: base, cleanup } = await tempDir('mcpd-write-'));
  dir = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(dir);
  await mkdir(outside);
  policy = await policyOver(dir);
});

afterEach(async () => {
  await cleanup();
});

function targetOf(relPath: string, op: Operation = 'write'): Promise<Target> {
  return allowedTarget(policy, op, relPath);
}

/** Awaits `promise`, which must reject with an McpdError of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<McpdError> {
  const error = await promise.then(
    (value) => {
      throw new Error(`expected ${code}, but it succeeded with ${JSON.stringify(value)}`);
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(McpdError);
  expect((error as McpdError).code).toBe(code);
  return error as McpdError;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Directory entries that are not mcpd temp files, sorted. */
async function visibleEntries(path: string): Promise<string[]> {
  return (await readdir(path)).filter((name) => !name.startsWith(TEMP_PREFIX)).sort();
}

/** Every leftover temp file must be hidden from clients by the exclude. */
async function expectLeftoversHidden(path: string): Promise<string[]> {
  const leftovers = (await readdir(path)).filter((name) => name.startsWith(TEMP_PREFIX));
  for (const name of leftovers) {
    const decision = await policy.decide(ANONYMOUS, 'read', name);
    expect(decision.allow).toBe(false);
    expect(decision.rule).toMatch(/^exclude:/);
  }
  return leftovers;
}

/** Runs the write fixture (`bash -c 'ulimit ...; exec node --import tsx fixture ...'`). */
function runWriter(
  args: string[],
  options: { fileSizeLimitKiB?: number; onSpawn?: (child: ChildProcess) => void } = {},
): Promise<RunResult> {
  const limit = options.fileSizeLimitKiB === undefined ? '' : `ulimit -f ${options.fileSizeLimitKiB}; `;
  return runCommand('bash', ['-c', `${limit}exec "$0" --import tsx "$@"`, process.execPath, FIXTURE, ...args], {
    cwd: REPO,
    onSpawn: options.onSpawn,
  });
}

describe('writeFileAtomic', () => {
  it('replaces atomically, keeps the mode, reports created and a fresh ETag on every write', async () => {
    const path = join(dir, 'notes.txt');
    const target = await targetOf('notes.txt');
    const first = await writeFileAtomic(target, Buffer.from('first\n'));
    expect(first.created).toBe(true);
    expect(await readFile(path, 'utf8')).toBe('first\n');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(first.info.etag).toBe(etagOf(await stat(path, { bigint: true })));
    expect(first.info).toMatchObject({ path: 'notes.txt', type: 'file', size: 6, permissions: '644' });

    await chmod(path, 0o640);
    const etags = new Set([etagOf(await stat(path, { bigint: true }))]);
    for (const text of ['second\n', 'second\n', 'third, and longer\n']) {
      const before = etagOf(await stat(path, { bigint: true }));
      const outcome = await writeFileAtomic(target, Buffer.from(text));
      expect(outcome.created).toBe(false);
      expect(await readFile(path, 'utf8')).toBe(text);
      expect((await stat(path)).mode & 0o7777).toBe(0o640);
      expect(outcome.info.permissions).toBe('640');
      expect(outcome.info.etag).toBe(etagOf(await stat(path, { bigint: true })));
      expect(outcome.info.etag).not.toBe(before);
      expect(etags.has(outcome.info.etag)).toBe(false);
      etags.add(outcome.info.etag);
    }
    expect(await visibleEntries(dir)).toEqual(['notes.txt']);
    expect(await expectLeftoversHidden(dir)).toEqual([]);
  });

  it('refuses to replace a directory', async () => {
    await mkdir(join(dir, 'sub'));
    await rejectsWith(writeFileAtomic(await targetOf('sub'), Buffer.from('x')), 'NOT_A_FILE');
    expect((await stat(join(dir, 'sub'))).isDirectory()).toBe(true);
  });

  it('a write that fails midway (file-size limit) leaves the old file intact and nothing partial visible', async () => {
    const path = join(dir, 'data.bin');
    const original = randomBytes(64 * 1024);
    await writeFile(path, original);
    await chmod(path, 0o600);
    const before = await stat(path, { bigint: true });

    // 1 MiB limit (ulimit -f counts KiB in bash), 4 MiB write. Node ignores SIGXFSZ, so the
    // over-limit write(2) fails with EFBIG instead of the process being killed.
    const result = await runWriter([dir, 'data.bin', String(4 * 1024 * 1024)], { fileSizeLimitKiB: 1024 });
    expect(result.signal, result.stderr).toBeNull();
    expect(result.stdout, result.stderr).toContain('error EFBIG');
    expect(result.code).toBe(3);

    expect((await readFile(path)).equals(original)).toBe(true);
    const after = await stat(path, { bigint: true });
    expect(etagOf(after)).toBe(etagOf(before));
    expect(Number(after.mode) & 0o777).toBe(0o600);
    expect(await visibleEntries(dir)).toEqual(['data.bin']);
    // The failed write cleaned up after itself; anything left would be hidden anyway.
    expect(await expectLeftoversHidden(dir)).toEqual([]);

    const replacement = Buffer.alloc(4 * 1024 * 1024, 'y');
    const outcome = await writeFileAtomic(await targetOf('data.bin'), replacement);
    expect(outcome.created).toBe(false);
    expect((await readFile(path)).equals(replacement)).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('a writer killed with SIGKILL in the middle of a large write leaves the old file intact', async () => {
    const path = join(dir, 'big.txt');
    const original = Buffer.from('the original contents\n'.repeat(1000));
    await writeFile(path, original);

    const watcher = watch(dir);
    let sawTemp = false;
    try {
      const result = await runWriter([dir, 'big.txt', String(200 * 1024 * 1024)], {
        onSpawn: (child) => {
          watcher.on('change', (_event, name) => {
            if (!sawTemp && String(name).startsWith(TEMP_PREFIX)) {
              sawTemp = true;
              child.kill('SIGKILL');
            }
          });
        },
      });
      expect(sawTemp).toBe(true);
      expect(result.signal, result.stdout + result.stderr).toBe('SIGKILL');
    } finally {
      watcher.close();
    }

    expect((await readFile(path)).equals(original)).toBe(true);
    expect(await visibleEntries(dir)).toEqual(['big.txt']);
    // No cleanup runs after SIGKILL: the temp file stays, but clients never see it.
    const leftovers = await expectLeftoversHidden(dir);
    expect(leftovers).toHaveLength(1);
    for (const name of leftovers) await rm(join(dir, name));

    await writeFileAtomic(await targetOf('big.txt'), Buffer.from('after\n'));
    expect(await readFile(path, 'utf8')).toBe('after\n');
  });

  describe('createOnly', () => {
    it('refuses an existing file and creates a new one', async () => {
      await writeFile(join(dir, 'taken.txt'), 'mine');
      await rejectsWith(
        writeFileAtomic(await targetOf('taken.txt'), Buffer.from('yours'), { createOnly: true }),
        'ALREADY_EXISTS',
      );
      expect(await readFile(join(dir, 'taken.txt'), 'utf8')).toBe('mine');

      const outcome = await writeFileAtomic(await targetOf('fresh.txt'), Buffer.from('new'), { createOnly: true });
      expect(outcome.created).toBe(true);
      expect(await readFile(join(dir, 'fresh.txt'), 'utf8')).toBe('new');
      expect((await stat(join(dir, 'fresh.txt'))).nlink).toBe(1);
      expect(await visibleEntries(dir)).toEqual(['fresh.txt', 'taken.txt']);
      expect(await expectLeftoversHidden(dir)).toEqual([]);
    });

    it('two concurrent creates of the same new path: exactly one wins', async () => {
      const target = await targetOf('race.txt');
      const results = await Promise.allSettled([
        writeFileAtomic(target, Buffer.from('A'), { createOnly: true }),
        writeFileAtomic(target, Buffer.from('B'), { createOnly: true }),
      ]);
      const won = results.findIndex((result) => result.status === 'fulfilled');
      const lost = results.filter((result) => result.status === 'rejected');
      expect(won).not.toBe(-1);
      expect(lost).toHaveLength(1);
      const reason = (lost[0] as PromiseRejectedResult).reason as unknown;
      expect(reason).toBeInstanceOf(McpdError);
      expect((reason as McpdError).code).toBe('ALREADY_EXISTS');
      expect(await readFile(join(dir, 'race.txt'), 'utf8')).toBe(won === 0 ? 'A' : 'B');
      expect(await visibleEntries(dir)).toEqual(['race.txt']);
      expect(await expectLeftoversHidden(dir)).toEqual([]);
    });
  });

  describe('expectedEtag', () => {
    it('replaces on a matching ETag; a stale one is a CONFLICT that leaves the file untouched', async () => {
      const path = join(dir, 'doc.md');
      await writeFile(path, 'v1');
      const target = await targetOf('doc.md');
      const v1 = etagOf(await stat(path, { bigint: true }));

      const outcome = await writeFileAtomic(target, Buffer.from('v2'), { expectedEtag: v1 });
      expect(await readFile(path, 'utf8')).toBe('v2');
      const v2 = outcome.info.etag;

      const error = await rejectsWith(writeFileAtomic(target, Buffer.from('v3'), { expectedEtag: v1 }), 'CONFLICT');
      expect(error.details).toEqual({ currentEtag: v2 });
      expect(await readFile(path, 'utf8')).toBe('v2');
      expect(etagOf(await stat(path, { bigint: true }))).toBe(v2);

      // An ETag cannot match a file that does not exist.
      await rejectsWith(
        writeFileAtomic(await targetOf('absent.md'), Buffer.from('x'), { expectedEtag: v2 }),
        'CONFLICT',
      );
      expect(await exists(join(dir, 'absent.md'))).toBe(false);
    });

    it('two writers holding the same ETag: exactly one succeeds, the other gets CONFLICT', async () => {
      const path = join(dir, 'shared.txt');
      await writeFile(path, 'base');
      const target = await targetOf('shared.txt');
      const etag = etagOf(await stat(path, { bigint: true }));
      const results = await Promise.allSettled([
        writeFileAtomic(target, Buffer.from('from A'), { expectedEtag: etag }),
        writeFileAtomic(target, Buffer.from('from B'), { expectedEtag: etag }),
      ]);
      const fulfilled = results.filter((result) => result.status === 'fulfilled');
      const rejected = results.filter((result) => result.status === 'rejected');
      expect(fulfilled).toHaveLength(1);
      expect(rejected).toHaveLength(1);
      const reason = (rejected[0] as PromiseRejectedResult).reason as unknown;
      expect(reason).toBeInstanceOf(McpdError);
      expect((reason as McpdError).code).toBe('CONFLICT');
      const winner = results[0]?.status === 'fulfilled' ? 'from A' : 'from B';
      expect(await readFile(path, 'utf8')).toBe(winner);
      const winning = (fulfilled[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof writeFileAtomic>>>).value;
      expect((reason as McpdError).details).toEqual({ currentEtag: winning.info.etag });
    });
  });

  it('writing a symlink entry replaces the link itself, never its target', async () => {
    const secret = join(outside, 'secret.txt');
    await writeFile(secret, 'outside, untouched');
    await writeFile(join(dir, 'real.txt'), 'inside, untouched');
    await symlink(secret, join(dir, 'out-link'));
    await symlink('real.txt', join(dir, 'in-link'));

    for (const name of ['out-link', 'in-link']) {
      const target = await targetOf(name);
      expect(target.kind).toBe('symlink');
      expect(target.absPath).toBe(join(dir, name));
      const outcome = await writeFileAtomic(target, Buffer.from(`replaced ${name}`));
      expect(outcome.created).toBe(false);
      const stats = await lstat(join(dir, name));
      expect(stats.isSymbolicLink()).toBe(false);
      expect(stats.isFile()).toBe(true);
      expect(await readFile(join(dir, name), 'utf8')).toBe(`replaced ${name}`);
    }
    expect(await readFile(secret, 'utf8')).toBe('outside, untouched');
    expect(await readFile(join(dir, 'real.txt'), 'utf8')).toBe('inside, untouched');
    expect(await readdir(outside)).toEqual(['secret.txt']);
  });
});

describe('a parent directory swapped for a symlink to outside after the decision', () => {
  /**
   * Decides `sub/<name>` while sub is a real directory (holding a file of that name when
   * `existingInside`), then swaps sub for a link to `outside`.
   */
  async function decideThenSwap(name: string, existingInside = false): Promise<Target> {
    await mkdir(join(dir, 'sub'), { recursive: true });
    if (existingInside) await writeFile(join(dir, 'sub', name), 'inside');
    const target = await targetOf(`sub/${name}`);
    expect(target.kind).toBe(existingInside ? 'file' : 'missing');
    await rename(join(dir, 'sub'), join(dir, 'sub-moved-away'));
    await symlink(outside, join(dir, 'sub'));
    expect(await readlink(join(dir, 'sub'))).toBe(outside);
    return target;
  }

  it('writeFileAtomic refuses and creates nothing outside', async () => {
    const target = await decideThenSwap('planted.txt');
    await rejectsWith(writeFileAtomic(target, Buffer.from('escape')), 'NOT_FOUND_OR_DENIED');
    await rejectsWith(writeFileAtomic(target, Buffer.from('escape'), { createOnly: true }), 'NOT_FOUND_OR_DENIED');
    expect(await readdir(outside)).toEqual([]);
  });

  it('writeFileAtomic refuses to replace an existing outside file through the swapped parent', async () => {
    await writeFile(join(outside, 'victim.txt'), 'outside, untouched');
    const target = await decideThenSwap('victim.txt', true);
    await rejectsWith(writeFileAtomic(target, Buffer.from('overwritten')), 'NOT_FOUND_OR_DENIED');
    expect(await readFile(join(outside, 'victim.txt'), 'utf8')).toBe('outside, untouched');
    expect(await readdir(outside)).toEqual(['victim.txt']);
  });

  it('createDirectory refuses and creates nothing outside', async () => {
    const target = await decideThenSwap('made');
    await rejectsWith(
      createDirectory(target, false, () => true),
      'NOT_FOUND_OR_DENIED',
    );
    expect(await readdir(outside)).toEqual([]);
  });

  it('deleteEntry refuses and deletes nothing outside', async () => {
    await writeFile(join(outside, 'victim.txt'), 'outside, untouched');
    const target = await decideThenSwap('victim.txt', true);
    await rejectsWith(deleteEntry(target), 'NOT_FOUND_OR_DENIED');
    expect(await readFile(join(outside, 'victim.txt'), 'utf8')).toBe('outside, untouched');
  });

  it('moveEntry refuses to move an outside file into the root', async () => {
    await writeFile(join(outside, 'victim.txt'), 'outside, untouched');
    const source = await decideThenSwap('victim.txt', true);
    const destination = await targetOf('pulled-in.txt');
    await rejectsWith(moveEntry(source, destination), 'NOT_FOUND_OR_DENIED');
    expect(await exists(join(dir, 'pulled-in.txt'))).toBe(false);
    expect(await readFile(join(outside, 'victim.txt'), 'utf8')).toBe('outside, untouched');
  });
});

describe('createDirectory', () => {
  it('recursive: every missing ancestor must be permitted', async () => {
    const asked: string[] = [];
    const target = await targetOf('a/b/c');
    await rejectsWith(
      createDirectory(target, true, (relPath) => {
        asked.push(relPath);
        return relPath !== 'a/b';
      }),
      'WRITE_DENIED',
    );
    expect(asked).toEqual(['a', 'a/b']);
    // Refused before anything was made: not even the permitted ancestor exists.
    expect(await readdir(dir)).toEqual([]);

    expect(await createDirectory(target, true, () => true)).toEqual({ created: true });
    expect((await stat(join(dir, 'a/b/c'))).isDirectory()).toBe(true);
  });

  it('an existing directory is not an error; a file in the way and a missing parent are', async () => {
    await mkdir(join(dir, 'there'));
    await writeFile(join(dir, 'file'), 'x');
    expect(await createDirectory(await targetOf('there'), false, () => true)).toEqual({ created: false });
    expect(await createDirectory(await targetOf('there'), true, () => true)).toEqual({ created: false });
    await rejectsWith(
      createDirectory(await targetOf('file'), true, () => true),
      'ALREADY_EXISTS',
    );
    await rejectsWith(
      createDirectory(await targetOf('missing/child'), false, () => true),
      'NOT_FOUND_OR_DENIED',
    );
    expect(await exists(join(dir, 'missing'))).toBe(false);
    expect(await createDirectory(await targetOf('new'), false, () => true)).toEqual({ created: true });
  });
});

describe('moveEntry', () => {
  it('never replaces an existing destination', async () => {
    await writeFile(join(dir, 'src.txt'), 'source');
    await writeFile(join(dir, 'dst.txt'), 'destination');
    await rejectsWith(moveEntry(await targetOf('src.txt'), await targetOf('dst.txt')), 'ALREADY_EXISTS');
    expect(await readFile(join(dir, 'src.txt'), 'utf8')).toBe('source');
    expect(await readFile(join(dir, 'dst.txt'), 'utf8')).toBe('destination');

    await mkdir(join(dir, 'src-dir'));
    await mkdir(join(dir, 'dst-dir'));
    await rejectsWith(moveEntry(await targetOf('src-dir'), await targetOf('dst-dir')), 'ALREADY_EXISTS');
    expect(await exists(join(dir, 'src-dir'))).toBe(true);
  });

  it('moves a file and a directory with its contents', async () => {
    await writeFile(join(dir, 'a.txt'), 'alpha');
    await moveEntry(await targetOf('a.txt'), await targetOf('b.txt'));
    expect(await exists(join(dir, 'a.txt'))).toBe(false);
    expect(await readFile(join(dir, 'b.txt'), 'utf8')).toBe('alpha');
    expect((await stat(join(dir, 'b.txt'))).nlink).toBe(1);

    await mkdir(join(dir, 'tree/inner'), { recursive: true });
    await writeFile(join(dir, 'tree/inner/leaf.txt'), 'leaf');
    await mkdir(join(dir, 'dest'));
    await moveEntry(await targetOf('tree'), await targetOf('dest/tree'));
    expect(await exists(join(dir, 'tree'))).toBe(false);
    expect(await readFile(join(dir, 'dest/tree/inner/leaf.txt'), 'utf8')).toBe('leaf');
  });

  it('a missing source is NOT_FOUND_OR_DENIED', async () => {
    await rejectsWith(moveEntry(await targetOf('nope'), await targetOf('other')), 'NOT_FOUND_OR_DENIED');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('deleteEntry', () => {
  it('deletes a file, a symlink (not its target) and an empty directory', async () => {
    await writeFile(join(dir, 'f.txt'), 'x');
    expect(await deleteEntry(await targetOf('f.txt'))).toEqual({ type: 'file' });
    expect(await exists(join(dir, 'f.txt'))).toBe(false);

    await writeFile(join(outside, 'kept.txt'), 'kept');
    await writeFile(join(dir, 'kept-inside.txt'), 'kept');
    await symlink(join(outside, 'kept.txt'), join(dir, 'out-link'));
    await symlink('kept-inside.txt', join(dir, 'in-link'));
    await mkdir(join(dir, 'linked-dir'));
    await writeFile(join(dir, 'linked-dir/child.txt'), 'child');
    await symlink('linked-dir', join(dir, 'dir-link'));
    for (const name of ['out-link', 'in-link', 'dir-link']) {
      const target = await targetOf(name);
      expect(target.kind).toBe('symlink');
      expect(await deleteEntry(target)).toEqual({ type: 'file' });
      expect(await exists(join(dir, name))).toBe(false);
    }
    expect(await readFile(join(outside, 'kept.txt'), 'utf8')).toBe('kept');
    expect(await readFile(join(dir, 'kept-inside.txt'), 'utf8')).toBe('kept');
    expect(await readFile(join(dir, 'linked-dir/child.txt'), 'utf8')).toBe('child');

    await mkdir(join(dir, 'empty'));
    expect(await deleteEntry(await targetOf('empty'))).toEqual({ type: 'directory' });
    expect(await exists(join(dir, 'empty'))).toBe(false);
  });

  it('refuses a non-empty directory and a missing entry', async () => {
    await rejectsWith(deleteEntry(await targetOf('never-existed')), 'NOT_FOUND_OR_DENIED');
    await mkdir(join(dir, 'full'));
    await writeFile(join(dir, 'full/child.txt'), 'child');
    await rejectsWith(deleteEntry(await targetOf('full')), 'DIRECTORY_NOT_EMPTY');
    expect(await readFile(join(dir, 'full/child.txt'), 'utf8')).toBe('child');
  });
});
