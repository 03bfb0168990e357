import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { postModern } from '../helpers/raw.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Three real `mcpd serve` processes and one real redis-server, on loopback: what the limits
 * promise a principal holds across the replicas, not per replica, and a replica that requires
 * Redis says so on /ready.
 */

const BURST = 60;
const PER_SECOND = 2;

let demo: Awaited<ReturnType<typeof demoCopy>>;
let redis: RedisServer;
const replicas: ServingProcess[] = [];
const audits: string[] = [];

function clusterYaml(url: string, extra = ''): string {
  return [
    'limits:',
    `  rateLimit: { perSecond: ${PER_SECOND}, burst: ${BURST} }`,
    '  maxConcurrentPerPrincipal: 4',
    'cluster:',
    `  redis: { url: "${url}", keyPrefix: "replicas:"${extra} }`,
    '',
  ].join('\n');
}

beforeAll(async () => {
  demo = await demoCopy();
  redis = await startRedis();
  const config = await demo.configWith('cluster.yaml', clusterYaml(redis.url));
  for (let i = 0; i < 3; i++) {
    const audit = `${demo.dir}/audit-${i}.log`;
    audits.push(audit);
    replicas.push(await serveMcpd(['--config', config, '--port', '0', '--audit-file', audit]));
  }
});

afterAll(async () => {
  for (const replica of replicas) await replica.stop();
  await redis?.close();
  await demo?.cleanup();
});

describe('three replicas sharing one Redis', () => {
  it('serve the SDK client through any replica', async () => {
    for (const replica of replicas) {
      const client = await modernHttpClient(replica.url, 'replica-sdk');
      const listed = await client.listTools();
      expect(listed.tools.length).toBeGreaterThan(10);
      await client.close();
    }
  });

  it('hold a principal to one rate limit across them (within 10%), and each serves its share', async () => {
    // A full bucket to start from, whatever earlier tests took from it.
    await redis.cli('FLUSHALL');
    const started = performance.now();
    const statuses: number[][] = [[], [], []];
    // Four calls at a time, round-robin over the replicas: within the concurrency quota.
    let next = 0;
    const total = 150;
    const worker = async () => {
      while (next < total) {
        const index = next++;
        const replica = index % 3;
        const response = await postModern(
          (replicas[replica] as ServingProcess).url,
          'tools/call',
          {
            name: 'list_roots',
            arguments: {},
          },
          { id: index, client: 'rate-probe' },
        );
        await response.arrayBuffer();
        (statuses[replica] as number[]).push(response.status);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const elapsedSec = (performance.now() - started) / 1000;
    const allowed = statuses.flat().filter((status) => status === 200).length;
    const limited = statuses.flat().filter((status) => status === 429).length;
    expect(allowed + limited).toBe(total);
    // The bucket: BURST at once, PER_SECOND more each second. Per replica it would be three times that.
    const budget = BURST + PER_SECOND * elapsedSec;
    expect(allowed).toBeGreaterThanOrEqual(BURST);
    expect(allowed).toBeLessThanOrEqual(Math.ceil(budget * 1.1));
    for (const served of statuses) expect(served.filter((status) => status === 200).length).toBeGreaterThan(10);

    // Each refusal is audited on the replica that refused it, with the shared rule.
    const refusals = (await Promise.all(audits.map(readAudit))).flat().filter((r) => r.rule === 'limit:rate');
    expect(refusals.length).toBe(limited);

    // And each replica's metrics show the Redis calls it made.
    for (const replica of replicas) {
      const metrics = await (await fetch(replica.url.replace(/\/mcp$/, '/metrics'))).text();
      expect(metrics).toMatch(/mcpd_redis_command_duration_seconds_count\{command="mcpdRate",outcome="ok"\} [1-9]/);
      expect(metrics).toMatch(
        /mcpd_redis_command_duration_seconds_count\{command="mcpdQuotaAcquire",outcome="ok"\} [1-9]/,
      );
    }
  });
});

describe('a replica that requires Redis', () => {
  let away: RedisServer;
  let replica: ServingProcess;

  beforeAll(async () => {
    away = await startRedis();
    await away.stop();
    const config = await demo.configWith(
      'required.yaml',
      clusterYaml(away.url, ', required: true, onUnavailable: closed'),
    );
    replica = await serveMcpd(['--config', config, '--port', '0']);
  });

  afterAll(async () => {
    await replica?.stop();
    await away?.close();
  });

  it('is not ready and refuses calls (503) while Redis is away, and recovers when it is back', async () => {
    const ready = () => fetch(replica.url.replace(/\/mcp$/, '/ready'));
    const down = await ready();
    expect(down.status).toBe(503);
    expect(await down.text()).toMatch(/redis/);
    const refused = await postModern(replica.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/shared limits cannot be checked/);

    await away.start();
    await until(async () => (await ready()).status === 200, {
      what: '/ready once Redis is back (reconnect backoff at most 2 s)',
      timeoutMs: 15_000,
    });
    const served = await postModern(replica.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(served.status).toBe(200);
  });
});
