import { watch } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { errorCode, modernHttpClient } from '../helpers/clients.js';
import { runCommand, serveMcpd } from '../helpers/process.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { requireCommand } from '../helpers/tools.js';
import { tempDir } from '../helpers/workspace.js';

/**
 * Faults injected for real: a full file system (a tmpfs this test mounts), permissions the server
 * process does not have (it runs as nobody), a file truncated under a read, a process killed in the
 * middle of a write, and an audit log that cannot be written. In each, nothing is lost or half
 * written, and the server says so.
 */

type Result = {
  isError?: boolean;
  content: { text?: string }[];
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
};
const codeOf = errorCode;

/** A tmpfs of `size` mounted at a fresh directory; unmounted by the returned function. */
async function smallFileSystem(size: string): Promise<{ dir: string; unmount: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('mcpd-fault-fs-');
  const mounted = await runCommand(requireCommand('mount'), ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  if (mounted.code !== 0) {
    throw new Error(`the fault tests mount a tmpfs and need root: mount said ${mounted.stderr.trim()}`);
  }
  return {
    dir,
    unmount: async () => {
      await runCommand(requireCommand('umount'), [dir]);
      await cleanup();
    },
  };
}

/** A config over `rootDir` (everything readable and writable), written beside it. */
async function configOver(configDir: string, rootDir: string, extra = ''): Promise<string> {
  const file = join(configDir, `faults-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(
    file,
    [
      'accessPolicy:',
      '  read: ["**/*"]',
      '  write: ["**/*"]',
      'roots:',
      `  - { name: Data, uri: ${rootDir} }`,
      extra,
    ].join('\n'),
  );
  return file;
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('faults', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    work = await tempDir('mcpd-faults-');
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => work?.cleanup());

  it('a write on a full file system fails with NO_SPACE, leaves the old file intact and no temp file', async () => {
    const fs = await smallFileSystem('1m');
    cleanups.push(fs.unmount);
    await writeFile(join(fs.dir, 'kept.txt'), 'the old contents\n');
    const server = await startServer(await configOver(work.dir, fs.dir));
    cleanups.push(() => server.close());
    const client = await modernHttpClient(server.url, 'filler');
    cleanups.push(() => client.close());
    const result = (await client.callTool({
      name: 'write_file',
      arguments: { path: 'kept.txt', content: 'x'.repeat(3 * 1024 * 1024) },
    })) as Result;
    expect(codeOf(result)).toBe('NO_SPACE');
    expect(await readFile(join(fs.dir, 'kept.txt'), 'utf8')).toBe('the old contents\n');
    expect(await readdir(fs.dir)).toEqual(['kept.txt']);
    const [record] = await waitForAudit(server.auditFile, (r) => r.client === 'filler');
    expect(record).toMatchObject({ decision: 'allow', outcome: 'error', error: 'NO_SPACE' });
  });

  it('what the server process may not touch (EACCES) is refused as such, never an internal error', async () => {
    const { dir, cleanup } = await tempDir('mcpd-eacces-');
    cleanups.push(cleanup);
    const root = join(dir, 'root');
    await mkdir(join(root, 'locked'), { recursive: true });
    await writeFile(join(root, 'secret.txt'), 'only root reads this');
    await writeFile(join(root, 'open.txt'), 'anyone reads this');
    await chmod(dir, 0o755);
    await chmod(root, 0o755);
    await chmod(join(root, 'open.txt'), 0o644);
    await chmod(join(root, 'secret.txt'), 0o600);
    await chmod(join(root, 'locked'), 0o555);
    const config = await configOver(dir, root);
    await chmod(config, 0o644);
    // The server runs as nobody (audit on stderr), so the kernel, not the policy, says no.
    const serving = await serveMcpd(['--config', config, '--port', '0'], {}, 20_000, [
      requireCommand('runuser'),
      '-u',
      'nobody',
      '--',
    ]);
    cleanups.push(async () => {
      await serving.stop();
    });
    const client = await modernHttpClient(serving.url, 'nobody-client');
    cleanups.push(() => client.close());
    const call = (name: string, args: Record<string, unknown>) =>
      client.callTool({ name, arguments: args }) as Promise<Result>;
    expect((await call('read_file', { path: 'open.txt' })).isError).toBeFalsy();
    expect(codeOf(await call('read_file', { path: 'secret.txt' }))).toBe('NOT_FOUND_OR_DENIED');
    expect(codeOf(await call('write_file', { path: 'locked/new.txt', content: 'x' }))).toBe('WRITE_DENIED');
    expect(codeOf(await call('write_file', { path: 'new-at-root.txt', content: 'x' }))).toBe('WRITE_DENIED');
    expect(codeOf(await call('create_directory', { path: 'locked/sub' }))).toBe('WRITE_DENIED');
    expect(codeOf(await call('delete_file', { path: 'open.txt' }))).toBe('WRITE_DENIED');
    expect(await readdir(root)).toEqual(expect.arrayContaining(['locked', 'open.txt', 'secret.txt']));
    expect(serving.stderr()).not.toMatch(/"error":"INTERNAL"/);
  });

  it('a file truncated under a streaming read is reported as changed, never summarised short', async () => {
    const { dir, cleanup } = await tempDir('mcpd-truncate-');
    cleanups.push(cleanup);
    const root = join(dir, 'root');
    await mkdir(root);
    await writeFile(join(root, 'big.csv'), 'a,b,c,d\n'.repeat(2_000_000));
    const server = await startServer(await configOver(dir, root));
    cleanups.push(() => server.close());
    const client = await modernHttpClient(server.url, 'truncated-reader');
    cleanups.push(() => client.close());
    let truncated: Promise<void> | undefined;
    const result = (await client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'big.csv', chunkSize: 4096 } },
      {
        onprogress: () => {
          truncated ??= truncate(join(root, 'big.csv'), 1000);
        },
      },
    )) as Result;
    await truncated;
    expect(result.isError).toBe(true);
    expect(codeOf(result)).toBe('CONFLICT');
    expect(result.content[0]?.text).toMatch(/changed while it was being read/);
  });

  it('a write killed mid-way leaves the old file and a temp file nobody sees; the next start removes it', async () => {
    const { dir, cleanup } = await tempDir('mcpd-killed-');
    cleanups.push(cleanup);
    const root = join(dir, 'root');
    await mkdir(root);
    await writeFile(join(root, 'doc.txt'), 'before\n');
    const config = await configOver(
      dir,
      root,
      'server:\n  maxBodyBytes: 100000000\nlimits:\n  maxWriteBytes: 90000000\n  staleTempFileMs: 0\n',
    );
    const serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', join(dir, 'audit.log')]);
    // SIGKILL the moment the temp file of the write appears: a 64 MB write is far from done then.
    const watcher = watch(root);
    let sawTemp = false;
    watcher.on('change', (_event, name) => {
      if (!sawTemp && String(name).startsWith('.mcpd-tmp-')) {
        sawTemp = true;
        serving.child.kill('SIGKILL');
      }
    });
    const client = await modernHttpClient(serving.url, 'killed-writer');
    try {
      const write = client.callTool({
        name: 'write_file',
        arguments: { path: 'doc.txt', content: 'y'.repeat(64 * 1024 * 1024) },
      });
      await write.then(
        () => {},
        () => {},
      );
      expect(await serving.exited).toBeNull();
      expect(sawTemp).toBe(true);
    } finally {
      watcher.close();
      await client.close().catch(() => {});
    }
    expect(await readFile(join(root, 'doc.txt'), 'utf8')).toBe('before\n');
    const leftovers = (await readdir(root)).filter((name) => name.startsWith('.mcpd-tmp-'));
    expect(leftovers).toHaveLength(1);
    // Hidden from every listing meanwhile, and swept at the next start.
    const restarted = await serveMcpd(['--config', config, '--port', '0', '--audit-file', join(dir, 'audit.log')]);
    cleanups.push(async () => {
      await restarted.stop();
    });
    await until(
      async () => (await readdir(root)).every((name) => !name.startsWith('.mcpd-tmp-')),
      'the temp file sweep',
    );
    expect(await readdir(root)).toEqual(['doc.txt']);
    await until(
      async () => /removed temp files of writes that never finished/.test(restarted.stderr()),
      'the sweep log line',
    );
  }, 60_000);

  it('an audit log that cannot be written stops file operations and readiness, and both come back with no record lost', async () => {
    const fs = await smallFileSystem('256k');
    cleanups.push(fs.unmount);
    const { dir, cleanup } = await tempDir('mcpd-audit-fault-');
    cleanups.push(cleanup);
    const root = join(dir, 'root');
    await mkdir(root);
    await writeFile(join(root, 'note.txt'), 'hello\n');
    const auditFile = join(fs.dir, 'audit.log');
    const server: TestServer = await startServer(await configOver(dir, root), { auditPath: auditFile });
    cleanups.push(() => server.close());
    const client = await modernHttpClient(server.url, 'audited');
    cleanups.push(() => client.close());
    const read = () => client.callTool({ name: 'read_file', arguments: { path: 'note.txt' } }) as Promise<Result>;
    expect((await read()).isError).toBeFalsy();
    await waitForAudit(auditFile, (r) => r.client === 'audited');
    // Fill the file system the audit log is on.
    await writeFile(join(fs.dir, 'filler'), Buffer.alloc(0));
    const filler = join(fs.dir, 'filler');
    await runCommand(requireCommand('dd'), ['if=/dev/zero', `of=${filler}`, 'bs=4096', 'count=1000']);
    let served = 1;
    let refused: Result | undefined;
    for (let i = 0; i < 2000 && refused === undefined; i++) {
      const result = await read();
      if (codeOf(result) === 'UNAVAILABLE') refused = result;
      else served += 1;
    }
    expect(refused?.content[0]?.text).toMatch(/audit log cannot be written/);
    const notReady = await fetch(`${server.base}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ reason: 'the audit log cannot be written' });
    // Space again: the sink writes what it held, and serving resumes.
    await rm(filler);
    await until(async () => (await fetch(`${server.base}/ready`)).status === 200, 'readiness to come back');
    expect((await read()).isError).toBeFalsy();
    served += 1;
    const records = await waitForAudit(auditFile, (r) => r.client === 'audited', served);
    expect(records).toHaveLength(served);
    expect(records.every((r) => r.outcome === 'ok')).toBe(true);
    expect((await readAudit(auditFile)).length).toBeGreaterThanOrEqual(served);
  });
});
