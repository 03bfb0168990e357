import { readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_PREV } from '../../src/audit/chain.js';
import { FileAuditSink } from '../../src/audit/fileSink.js';
import { AuditLog } from '../../src/audit/log.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { ACCESS_FIELDS, readAuditChain } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { runMcpd, serveMcpd } from '../helpers/process.js';
import { until } from '../helpers/wait.js';
import { demoCopy, tempDir } from '../helpers/workspace.js';

/**
 * Rotation of the audit file: by size under load, by the clock, and on SIGUSR1 after logrotate
 * has moved the file. The chain runs on across files (the first record of a file names the last
 * hash of the one before), no record is lost or split, and `mcpd audit verify` passes the set.
 */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The audit files in `dir` named after `base`, oldest first (rotated ones sort by their stamp). */
async function auditFiles(dir: string, base: string): Promise<string[]> {
  const rotated = (await readdir(dir)).filter((name) => name.startsWith(`${base}.`)).sort();
  return [...rotated.map((name) => join(dir, name)), join(dir, base)];
}

describe('audit file rotation', () => {
  it('rotates by size under load: sequence numbers contiguous across files, none split or lost, verify passes', async () => {
    const demo = await demoCopy();
    cleanups.push(demo.cleanup);
    const config = await demo.configWithAudit(
      'rotating.yaml',
      '  sink: file\n  path: ./audit/mcpd.log\n  rotate:\n    maxBytes: 16384\n',
      'limits:\n  rateLimit: { perSecond: 10000, burst: 10000 }\n',
    );
    const serving = await serveMcpd(['--config', config, '--port', '0']);
    cleanups.push(() => serving.stop());
    const paths = ['README.md', 'docs/architecture.md', '.env', 'nope.md', 'data/sales.csv'];
    const CLIENTS = 8;
    const CALLS = 40;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const client = await modernHttpClient(serving.url, `loader-${c}`);
        try {
          for (let i = 0; i < CALLS; i++) {
            await client.callTool({ name: 'read_file', arguments: { path: paths[(c + i) % paths.length] } });
          }
        } finally {
          await client.close();
        }
      }),
    );
    expect(await serving.stop()).toBe(0);

    const dir = join(demo.dir, 'audit');
    const files = await auditFiles(dir, 'mcpd.log');
    expect(files.length).toBeGreaterThan(5);
    const perFile = await Promise.all(files.map((file) => readAuditChain(file)));
    const records = perFile.flat();
    // Every record once, in order, across the files.
    expect(records.map((record) => record.seq)).toEqual(records.map((_, index) => index));
    expect(records.filter((record) => record.client?.startsWith('loader-'))).toHaveLength(CLIENTS * CALLS);
    for (const [index, file] of perFile.entries()) {
      const text = await readFile(files[index] as string, 'utf8');
      expect(text.endsWith('\n'), `${files[index]} ends with a whole line`).toBe(true);
      if (index === 0) {
        expect(file[0]).toMatchObject({ op: 'genesis', prev: GENESIS_PREV });
        continue;
      }
      // Each later file opens with the record about the switch, chained to the last of the one before.
      const before = perFile[index - 1] as AuditRecord[];
      expect(file[0]).toMatchObject({
        op: 'rotate',
        rotation: { reason: 'size', previous: (files[index - 1] as string).split('/').pop() },
        prev: before[before.length - 1]?.hash,
      });
      // A file holds about maxBytes: rotation happens at the first record past it.
      expect(Buffer.byteLength(await readFile(files[index - 1] as string))).toBeLessThan(16384 + 2048);
    }
    const result = await runMcpd(['audit', 'verify', ...files]);
    expect(result.stdout).toMatch(new RegExp(`^OK: ${records.length} records, 1 chain, 0 problems`, 'm'));
    expect(result.code).toBe(0);
    // Leaving out a rotated file in the middle is named as missing records.
    const gap = await runMcpd(['audit', 'verify', '--json', ...files.filter((_, index) => index !== 2)]);
    expect(gap.code).toBe(1);
    expect(JSON.parse(gap.stdout).problems[0]).toMatchObject({ kind: 'missing', file: files[3] });
  }, 60_000);

  it('reopens on SIGUSR1 after logrotate moved the file: records written meanwhile stay in the moved file, the new one continues the chain', async () => {
    const demo = await demoCopy();
    cleanups.push(demo.cleanup);
    const log = join(demo.dir, 'audit.log');
    const serving = await serveMcpd(['--config', demo.config, '--port', '0', '--audit-file', log]);
    cleanups.push(() => serving.stop());
    const client = await modernHttpClient(serving.url, 'rotated');
    cleanups.push(() => client.close());
    const read = (path: string) => client.callTool({ name: 'read_file', arguments: { path } });
    await read('README.md');
    await until(async () => (await readAuditChain(log)).some((r) => r.client === 'rotated'), {
      what: 'the first record',
    });
    // What logrotate does (without copytruncate): move the file, then signal.
    await rename(log, `${log}.1`);
    await read('docs/architecture.md');
    serving.child.kill('SIGUSR1');
    await until(async () => (await readAuditChain(log)).some((r) => r.op === 'rotate'), { what: 'the new file' });
    await read('.env');
    await client.close();
    expect(await serving.stop()).toBe(0);

    const moved = await readAuditChain(`${log}.1`);
    const current = await readAuditChain(log);
    // The record of the read between the move and the signal went where the descriptor pointed.
    expect(moved.map((r) => r.requested)).toContain('docs/architecture.md');
    expect(current[0]).toMatchObject({
      op: 'rotate',
      rotation: { reason: 'reopen', previous: null },
      prev: moved[moved.length - 1]?.hash,
    });
    expect(current.some((r) => r.requested === '.env' && r.decision === 'deny')).toBe(true);
    const result = await runMcpd(['audit', 'verify', `${log}.1`, log]);
    expect(result.code, result.stdout).toBe(0);
    expect(serving.stderr()).toMatch(/SIGUSR1: beginning a new audit file/);
  }, 30_000);

  it('rotates by the clock: the first record of a new hour begins a new file, and a file left from an earlier hour is rotated at start', async () => {
    const { dir, cleanup } = await tempDir('mcpd-rotate-clock-');
    cleanups.push(cleanup);
    const path = join(dir, 'audit.log');
    const hour = 3_600_000;
    let now = Date.UTC(2026, 10, 30, 9, 59, 0);
    // A file a previous process left at 08:10.
    await writeFile(path, '');
    await writeFile(path, `${JSON.stringify({ left: 'over' })}\n`);
    await utimes(path, new Date(now - hour - 49 * 60_000), new Date(now - hour - 49 * 60_000));
    const sink = new FileAuditSink(path, { maxBytes: null, interval: 'hourly' }, { now: () => now });
    const log = new AuditLog(sink, () => new Date(now));
    log.genesis({ version: 't', host: 'h', pid: 1, configSha256: '' });
    log.write(ACCESS_FIELDS);
    now += 30_000;
    log.write(ACCESS_FIELDS);
    now += 60_000; // 10:00:30: a new hour
    log.write(ACCESS_FIELDS);
    log.write(ACCESS_FIELDS);
    await log.close();

    const names = (await readdir(dir)).sort();
    expect(names).toEqual(['audit.log', 'audit.log.20261130T095900.000Z', 'audit.log.20261130T100030.000Z']);
    const first = await readFile(join(dir, names[1] as string), 'utf8');
    // The earlier process's file took the genesis record, then was rotated by the first access.
    expect(
      first
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).op ?? 'foreign'),
    ).toEqual(['foreign', 'genesis']);
    const second = await readAuditChain(join(dir, names[2] as string));
    expect(second.map((r) => [r.seq, r.op])).toEqual([
      [1, 'rotate'],
      [2, 'read'],
      [3, 'read'],
    ]);
    expect(second[0]?.rotation).toEqual({ reason: 'time', previous: names[1] });
    const third = await readAuditChain(path);
    expect(third.map((r) => [r.seq, r.op])).toEqual([
      [4, 'rotate'],
      [5, 'read'],
      [6, 'read'],
    ]);
    const verified = await verifyAuditFiles([join(dir, names[2] as string), path], null);
    expect(verified).toMatchObject({ ok: true, records: 6 });
    expect(verified.notes).toEqual([expect.stringContaining('the chain starts at seq 1')]);
  });

  it('never overwrites a rotated file: a name already taken gets a suffix', async () => {
    const { dir, cleanup } = await tempDir('mcpd-rotate-name-');
    cleanups.push(cleanup);
    const path = join(dir, 'audit.log');
    const now = Date.UTC(2026, 10, 30, 12, 0, 0);
    await writeFile(`${path}.20261130T120000.000Z`, 'kept\n');
    const log = new AuditLog(
      new FileAuditSink(path, { maxBytes: 4096, interval: null }, { now: () => now }),
      () => new Date(now),
    );
    for (let i = 0; i < 40; i++) log.write(ACCESS_FIELDS);
    await log.close();
    expect(await readFile(`${path}.20261130T120000.000Z`, 'utf8')).toBe('kept\n');
    const names = (await readdir(dir)).filter((name) => name !== 'audit.log.20261130T120000.000Z').sort();
    expect(names.slice(0, 3)).toEqual([
      'audit.log',
      'audit.log.20261130T120000.000Z.1',
      'audit.log.20261130T120000.000Z.2',
    ]);
  });
});
