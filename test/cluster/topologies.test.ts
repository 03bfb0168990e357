import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { BusChange } from '../../src/cluster/changeBus.js';
import { type SharedState, sharedState } from '../../src/cluster/shared.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { RedisSettings } from '../../src/config/types.js';
import { createLogger } from '../../src/ops/logger.js';
import { freePort } from '../helpers/ports.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { clientCertificate, makeCertificates } from '../helpers/tls.js';
import { requireCommand } from '../helpers/tools.js';
import { until } from '../helpers/wait.js';
import { tempDir } from '../helpers/workspace.js';

/**
 * The highly available Redis topologies the deployment guide recommends, for real: a primary
 * watched by Sentinel, and a three-node Redis Cluster. Every kind of shared state works through
 * each: admitting a call (the one script of two keys, which must share a Cluster slot), tasks and
 * the change bus.
 */

const run = promisify(execFile);
const servers: RedisServer[] = [];
const children: ChildProcess[] = [];
const states: SharedState[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const state of states) await state.close();
  for (const child of children) child.kill('SIGTERM');
  for (const server of servers) await server.close();
  for (const cleanup of cleanups) await cleanup();
});

/** Redis commands that failed and limits decided without Redis, across every connection here. */
const failures: string[] = [];

async function connect(settings: Partial<RedisSettings>): Promise<SharedState> {
  const state = await sharedState(
    {
      cluster: {
        redis: {
          keyPrefix: 'topo:',
          connectTimeoutMs: 2000,
          commandTimeoutMs: 2000,
          required: false,
          onUnavailable: 'local',
          password: null,
          tls: null,
          ...settings,
        },
        leaseMs: 15_000,
      },
    } as unknown as Config,
    {
      logger: createLogger('silent'),
      replica: 'topology',
      observer: {
        command: (name, outcome) => {
          if (outcome !== 'ok') failures.push(`${name} failed`);
        },
        fallback: (thing) => failures.push(`${thing} fell back`),
        traced: (_name, work) => work(),
      },
    },
  );
  states.push(state);
  await until(() => state.redisReady, { what: `redis (${settings.mode}) connected`, timeoutMs: 15_000 });
  return state;
}

/** Everything the replicas share, through `state`, with no fallback taken. */
async function exercise(state: SharedState): Promise<void> {
  // Many principals: their keys land on many Cluster slots.
  for (let i = 0; i < 20; i++) {
    const admitted = await state.calls.admit(`principal-${i}`, {
      maxTotal: 100,
      maxPerKey: 1,
      count: 1,
      perSecond: 0.001,
      burst: 2,
    });
    expect(admitted.ok, `principal-${i}`).toBe(true);
    expect(
      await state.calls.admit(`principal-${i}`, { maxTotal: 100, maxPerKey: 1, count: 1, perSecond: 0.001, burst: 2 }),
    ).toEqual({
      ok: false,
      reason: 'concurrency',
    });
    if (admitted.ok) admitted.slots.release();
  }
  await state.tasks.create({ taskId: 'topology-task', owner: 'alice', tool: 't', ttlMs: 60_000, leaseMs: 60_000 });
  await state.tasks.finish('topology-task', { status: 'completed', result: { content: [] } });
  expect(await state.tasks.get('topology-task')).toMatchObject({ status: 'completed', result: { content: [] } });
  const heard: BusChange[] = [];
  const stop = state.changes.subscribe((change) => heard.push(change));
  await until(
    () => {
      state.changes.publish({ root: 'r', relPath: 'x.md', kind: 'changed', isDirectory: false, version: '1:1' });
      return heard.length > 0;
    },
    { what: 'a change through the bus', intervalMs: 100 },
  );
  stop();
  expect(failures).toEqual([]);
}

describe('Redis topologies', () => {
  it('works through Sentinel: the primary it names', async () => {
    const primary = await startRedis();
    servers.push(primary);
    const { dir, cleanup } = await tempDir('mcpd-sentinel-');
    cleanups.push(cleanup);
    const port = await freePort();
    const conf = join(dir, 'sentinel.conf');
    await writeFile(
      conf,
      [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor primary 127.0.0.1 ${primary.port} 1`, ''].join(
        '\n',
      ),
    );
    const sentinel = spawn(requireCommand('redis-server'), [conf, '--sentinel'], { stdio: 'ignore' });
    children.push(sentinel);
    const cli = requireCommand('redis-cli');
    await until(
      async () => {
        const { stdout } = await run(cli, ['-p', String(port), 'sentinel', 'get-master-addr-by-name', 'primary']).catch(
          () => ({ stdout: '' }),
        );
        return stdout.includes(String(primary.port));
      },
      { what: 'the sentinel to know the primary', intervalMs: 50 },
    );
    await exercise(await connect({ mode: 'sentinel', nodes: [{ host: '127.0.0.1', port }], sentinelName: 'primary' }));
  });

  it('works on a three-node Redis Cluster, a principal’s keys on one slot', async () => {
    const nodes: RedisServer[] = [];
    for (let i = 0; i < 3; i++)
      nodes.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000']));
    servers.push(...nodes);
    const cli = requireCommand('redis-cli');
    await run(cli, ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes']);
    await until(async () => (await nodes[0]?.cli('cluster', 'info'))?.includes('cluster_state:ok'), {
      what: 'the cluster to be ok',
      intervalMs: 100,
    });
    await exercise(await connect({ mode: 'cluster', nodes: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) }));
  });

  it('works over mutual TLS, its CA and client certificate read from the files the config names', async () => {
    const { dir, cleanup } = await tempDir('mcpd-redis-tls-');
    cleanups.push(cleanup);
    const openssl = requireCommand('openssl');
    await makeCertificates(openssl, dir);
    await clientCertificate(openssl, dir);
    const port = await freePort();
    const server = spawn(
      requireCommand('redis-server'),
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--dir',
        dir,
        '--tls-cert-file',
        join(dir, 'tls/tls.crt'),
        '--tls-key-file',
        join(dir, 'tls/tls.key'),
        '--tls-ca-cert-file',
        join(dir, 'ca.pem'),
        '--tls-auth-clients',
        'yes',
      ],
      { stdio: 'ignore' },
    );
    children.push(server);
    const configFile = join(dir, 'mcpd.yaml');
    await writeFile(
      configFile,
      [
        'roots: [{ name: r, uri: . }]',
        'cluster:',
        '  redis:',
        `    url: rediss://127.0.0.1:${port}`,
        '    tls: { caFile: ./ca.pem, certFile: ./client.crt, keyFile: ./client.key, servername: localhost }',
        '',
      ].join('\n'),
    );
    const { redis } = loadConfig({ file: configFile }).cluster;
    expect(redis?.tls?.ca).toContain('BEGIN CERTIFICATE');
    await exercise(await connect({ ...(redis as RedisSettings), keyPrefix: 'tls:' }));
  });
});
