import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { spawnNginx, waitForExit, withTestPorts, withTestUpstreams } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { modernRequest } from '../helpers/raw.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { makeCertificates } from '../helpers/tls.js';
import { requireCommand } from '../helpers/tools.js';
import { until } from '../helpers/wait.js';
import { demoCopy, REPO, tempDir } from '../helpers/workspace.js';

/**
 * Horizontal scaling end to end: the real nginx.conf in front of three mcpd processes sharing one
 * real Redis, driven by the official SDK clients (v2 and v1) over HTTPS. Many clients, each from
 * its own loopback address (nginx limits each address), each a principal of its own (an API key).
 */

const DEPLOY = join(REPO, 'deploy/nginx');
/** Clients in the mixed run, each with its own address and key; half SDK v2, half SDK v1. */
const CLIENTS = 20;
const CALLS_PER_CLIENT = 100;
/** The shared limit each principal gets, whatever replica serves it. */
const RATE = { perSecond: 5, burst: 150 };

interface Principal {
  readonly name: string;
  readonly key: string;
}

const principals: Principal[] = Array.from({ length: CLIENTS + 1 }, (_, i) => ({
  name: i === CLIENTS ? 'probe' : `client-${i}`,
  key: randomBytes(24).toString('base64url'),
}));

let dir: string;
let cleanupDir: (() => Promise<void>) | undefined;
let demo: Awaited<ReturnType<typeof demoCopy>> | undefined;
let redis: RedisServer | undefined;
let nginx: ChildProcess | undefined;
let httpsPort: number;
let ca: string;
const replicas: ServingProcess[] = [];
let replicaPorts: number[] = [];
let configFile: string;

/**
 * A fetch over HTTPS trusting the test CA, each request from the next of `localAddresses`: nginx
 * limits each client address, and a client of many addresses stays under it.
 */
function fetchFrom(...localAddresses: string[]): typeof fetch {
  const dispatchers = localAddresses.map((localAddress) => new Agent({ localAddress, connect: { ca } }));
  let next = 0;
  return ((url: string | URL, init?: RequestInit) =>
    undiciFetch(url, {
      ...(init as object),
      dispatcher: dispatchers[next++ % dispatchers.length],
    } as never)) as unknown as typeof fetch;
}

const mcpUrl = () => new URL(`https://127.0.0.1:${httpsPort}/mcp`);
const bearer = (principal: Principal) => ({ headers: { authorization: `Bearer ${principal.key}` } });

async function metricsOf(replica: ServingProcess): Promise<string> {
  return (await fetch(replica.url.replace(/\/mcp$/, '/metrics'), bearer(principals[0] as Principal))).text();
}

/** tools/call answered by a replica, as its metrics count them (the histogram's count). */
function toolCalls(metrics: string, tool = '[^"]*'): number {
  return [
    ...metrics.matchAll(
      new RegExp(
        `^mcp_server_operation_duration_seconds_count\\{[^}]*mcp_method_name="tools/call",gen_ai_tool_name="${tool}"[^}]*\\} (\\d+)`,
        'gm',
      ),
    ),
  ]
    .map((m) => Number(m[1]))
    .reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  const nginxBin = requireCommand('nginx');
  const openssl = requireCommand('openssl');
  ({ dir, cleanup: cleanupDir } = await tempDir('mcpd-scaling-'));
  await chmod(dir, 0o755);
  await makeCertificates(openssl, dir);
  ca = await readFile(join(dir, 'ca.pem'), 'utf8');
  httpsPort = await freePort();
  const httpPort = await freePort();
  replicaPorts = [await freePort(), await freePort(), await freePort()];
  await writeFile(
    join(dir, 'nginx.conf'),
    withTestPorts(await readFile(join(DEPLOY, 'nginx.conf'), 'utf8'), httpsPort, httpPort).text,
  );
  await writeFile(
    join(dir, 'upstreams.conf'),
    withTestUpstreams(await readFile(join(DEPLOY, 'upstreams.conf'), 'utf8'), replicaPorts).text,
  );

  redis = await startRedis();
  demo = await demoCopy();
  const config = parseYaml(await readFile(demo.config, 'utf8')) as Record<string, Record<string, unknown>>;
  config.server = { ...config.server, trustedProxies: ['127.0.0.1'] };
  config.auth = {
    mode: 'apiKeys',
    apiKeys: principals.map((p) => ({
      principal: p.name,
      sha256: createHash('sha256').update(p.key).digest('hex'),
      scopes: ['mcpd:read', 'mcpd:write'],
    })),
  };
  config.limits = { ...config.limits, rateLimit: RATE, maxConcurrentPerPrincipal: 8 };
  config.cluster = { redis: { url: redis.url, keyPrefix: 'scaling:' } };
  configFile = join(demo.dir, 'scaling.yaml');
  await writeFile(configFile, stringifyYaml(config));
  for (const port of replicaPorts) replicas.push(await serveMcpd(['--config', configFile, '--port', String(port)]));

  const nginxArgs = ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
  const server = spawnNginx(nginxBin, [...nginxArgs, '-g', 'daemon off;'], join(dir, 'access.log'));
  nginx = server;
  let nginxErr = '';
  server.stderr?.on('data', (chunk: Buffer) => {
    nginxErr += chunk;
  });
  await until(
    async () => {
      if (server.exitCode !== null) throw new Error(`nginx exited with ${server.exitCode}:\n${nginxErr}`);
      const reply = await fetchFrom('127.0.0.1')(`https://127.0.0.1:${httpsPort}/health`).catch(() => undefined);
      return reply?.status === 200;
    },
    { what: 'nginx to answer /health', intervalMs: 50 },
  );
}, 60_000);

afterAll(async () => {
  if (nginx && nginx.exitCode === null) {
    nginx.kill('SIGQUIT');
    if (!(await waitForExit(nginx, 5000))) nginx.kill('SIGKILL');
  }
  for (const replica of replicas) await replica.stop();
  await redis?.close();
  await demo?.cleanup();
  await cleanupDir?.();
});

describe('three replicas behind nginx, sharing Redis', () => {
  it(`serve ${CLIENTS * CALLS_PER_CLIENT} mixed calls from SDK v2 and v1 clients with no error, each replica a share`, async () => {
    const before = await Promise.all(replicas.map(metricsOf));
    const errors: string[] = [];
    let done = 0;
    const runClient = async (index: number) => {
      const principal = principals[index] as Principal;
      const addresses = Array.from({ length: 5 }, (_, a) => `127.1.${index + 1}.${a + 1}`);
      const options = { fetch: fetchFrom(...addresses), requestInit: bearer(principal) };
      const modern = index % 2 === 0;
      const client = modern
        ? new Client(
            { name: `scaling-v2-${index}`, version: '1' },
            { versionNegotiation: { mode: { pin: '2026-07-28' } } },
          )
        : new V1Client({ name: `scaling-v1-${index}`, version: '1' });
      await (modern
        ? (client as Client).connect(new StreamableHTTPClientTransport(mcpUrl(), options))
        : (client as V1Client).connect(new V1HttpTransport(mcpUrl(), options as never)));
      const calls = [
        { name: 'list_roots', arguments: {} },
        { name: 'read_file', arguments: { path: 'README.md' } },
        { name: 'list_directory', arguments: { path: 'docs' } },
        { name: 'get_file_info', arguments: { path: 'data/sales.csv' } },
        { name: 'search_files', arguments: { pattern: '*.md' } },
      ];
      for (let i = 0; i < CALLS_PER_CLIENT; i++) {
        const call = calls[i % calls.length] as { name: string; arguments: Record<string, unknown> };
        try {
          const result = (await client.callTool(call)) as { isError?: boolean; content: { text?: string }[] };
          if (result.isError) errors.push(`${principal.name} ${call.name}: ${result.content[0]?.text}`);
        } catch (error) {
          errors.push(`${principal.name} ${call.name}: ${(error as Error).message}`);
        }
        done += 1;
      }
      await client.close();
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runClient(i)));
    expect(errors.slice(0, 5)).toEqual([]);
    expect(done).toBe(CLIENTS * CALLS_PER_CLIENT);

    // Every replica served a share, as its own metrics count it.
    const after = await Promise.all(replicas.map(metricsOf));
    const served = after.map((text, i) => toolCalls(text) - toolCalls(before[i] as string));
    expect(served.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(CLIENTS * CALLS_PER_CLIENT);
    for (const share of served)
      expect(share, JSON.stringify(served)).toBeGreaterThan((CLIENTS * CALLS_PER_CLIENT) / 10);
  }, 120_000);

  it('hold one principal to its rate limit across the three replicas (within 10%)', async () => {
    const probe = principals[CLIENTS] as Principal;
    // Three times the burst, from many addresses so that nginx's own per-address limit never
    // answers: every 429 here is mcpd's shared bucket. Per replica, all of them would pass.
    const total = RATE.burst * 3;
    const started = performance.now();
    // Six at a time: within the principal's share of calls in progress (8), so that every refusal
    // is the rate limit's.
    const fetchAll = fetchFrom(...Array.from({ length: 100 }, (_, a) => `127.2.0.${a + 1}`));
    const statuses: number[] = [];
    const refusals = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const { headers, body } = modernRequest('tools/list', {}, { id: i, client: 'rate-probe' });
        const response = await fetchAll(mcpUrl().href, {
          method: 'POST',
          headers: { ...headers, ...bearer(probe).headers },
          body,
        });
        const text = await response.text();
        statuses.push(response.status);
        if (response.status !== 200) refusals.add((JSON.parse(text) as { error: { message: string } }).error.message);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    const elapsedSec = (performance.now() - started) / 1000;
    const allowed = statuses.filter((s) => s === 200).length;
    expect(new Set(statuses)).toEqual(new Set([200, 429]));
    expect([...refusals]).toEqual([expect.stringMatching(/^request rate limit reached/)]);
    expect(allowed).toBeGreaterThanOrEqual(RATE.burst);
    process.stdout.write(
      `scaling: one principal, ${total} calls over 3 replicas in ${elapsedSec.toFixed(2)} s: ${allowed} allowed ` +
        `(bucket: ${RATE.burst} + ${RATE.perSecond}/s)\n`,
    );
    expect(allowed, `${elapsedSec.toFixed(1)} s`).toBeLessThanOrEqual(
      Math.ceil((RATE.burst + RATE.perSecond * elapsedSec) * 1.1),
    );
  }, 60_000);

  it('restart one by one under load (SIGTERM, drain, start): no call fails, read or write', async () => {
    await redis?.cli('FLUSHALL');
    await writeFile(join(demo?.project ?? '', 'workspace/rolling-big.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(2_000_000));
    const failures: string[] = [];
    let writes = 0;
    let reads = 0;
    const connect = async (name: string, principal: Principal, addresses: string[]) => {
      const client = new Client({ name, version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
      await client.connect(
        new StreamableHTTPClientTransport(mcpUrl(), { fetch: fetchFrom(...addresses), requestInit: bearer(principal) }),
      );
      return client;
    };
    const readers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        connect(
          `rolling-${i}`,
          principals[i] as Principal,
          Array.from({ length: 5 }, (_, a) => `127.4.${i + 1}.${a + 1}`),
        ),
      ),
    );
    const writer = await connect(
      'rolling-writer',
      principals[9] as Principal,
      Array.from({ length: 5 }, (_, a) => `127.4.100.${a + 1}`),
    );
    const mix = [
      { name: 'read_file', arguments: { path: 'README.md' } },
      { name: 'list_directory', arguments: { path: 'docs' } },
      { name: 'get_file_info', arguments: { path: 'data/sales.csv' } },
    ];
    let round = 0;
    const read = async (client: Client) => {
      try {
        const result = (await client.callTool(mix[round % mix.length] as (typeof mix)[number])) as {
          isError?: boolean;
          content: { text?: string }[];
        };
        if (result.isError) failures.push(`read: ${result.content[0]?.text}`);
        else reads += 1;
      } catch (error) {
        failures.push(`read: ${(error as Error).message}`);
      }
    };
    const write = async () => {
      try {
        const result = (await writer.callTool({
          name: 'write_file',
          arguments: { path: 'workspace/rolling.md', content: `write ${round}\n` },
        })) as { isError?: boolean; content: { text?: string }[] };
        if (result.isError) failures.push(`write: ${result.content[0]?.text}`);
        else writes += 1;
      } catch (error) {
        // A draining replica's 503 included: its listener is closed, so nothing should reach it.
        failures.push(`write: ${(error as Error).message}`);
      }
    };
    /**
     * Waits for `condition` under load: every check first makes one call from each client (eight
     * reads, one write). Polled every 200 ms, that is a steady five calls a second per client.
     */
    const underLoad = (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000) =>
      until(
        async () => {
          round += 1;
          await Promise.all([...readers.map(read), write()]);
          return condition();
        },
        { what, timeoutMs, intervalMs: 200 },
      );
    for (const [i, port] of replicaPorts.entries()) {
      const before = reads;
      await underLoad(`reads before restarting replica ${i}`, () => reads >= before + 20);
      const old = replicas[i] as ServingProcess;
      // A long call in flight keeps the replica draining for seconds: its listener is closed
      // meanwhile, so nginx sends every new request elsewhere, writes included.
      const { headers, body } = modernRequest(
        'tools/call',
        { name: 'process_large_dataset', arguments: { path: 'workspace/rolling-big.csv', chunkSize: 4096 } },
        { client: 'rolling-long' },
      );
      const long = fetch(old.url, {
        method: 'POST',
        headers: { ...headers, ...bearer(principals[10] as Principal).headers },
        body,
      });
      await until(async () => Number(/^mcpd_requests_in_flight (\d+)/m.exec(await metricsOf(old))?.[1] ?? 0) > 0, {
        what: 'the long call to be in flight',
        intervalMs: 20,
      });
      let exitCode: number | null | undefined;
      void old.stop('SIGTERM').then((code) => {
        exitCode = code;
      });
      await underLoad(`replica ${i} to drain and exit`, () => exitCode !== undefined);
      expect(exitCode).toBe(0);
      expect((await long).status).toBe(200);
      replicas[i] = await serveMcpd(['--config', configFile, '--port', String(port)]);
      await underLoad(
        `replica ${i} ready again`,
        async () => (await fetch(replicas[i]?.url.replace(/\/mcp$/, '/ready') ?? '')).status === 200,
      );
      // nginx took the replica out when it refused (max_fails) and tries it again after
      // fail_timeout (10 s): the next one restarts only once this one serves again, or nginx could
      // be left with none. Reads and writes go through two upstream pools, each with its own
      // count of failures: both must send it calls again.
      await underLoad(`nginx to send replica ${i} reads and writes again`, async () => {
        const metrics = await metricsOf(replicas[i] as ServingProcess);
        return toolCalls(metrics, 'read_file') > 0 && toolCalls(metrics, 'write_file') > 0;
      });
    }
    const after = reads;
    await underLoad('reads after the last restart', () => reads >= after + 20);
    await Promise.all([...readers, writer].map((client) => client.close()));
    expect(failures).toEqual([]);
    expect(writes).toBeGreaterThan(0);
    process.stdout.write(
      `rolling restart of 3 replicas under load: ${reads} reads and ${writes} writes, none failed\n`,
    );
  }, 120_000);

  it('lose only the calls in flight on a replica killed under load (SIGKILL)', async () => {
    const clients = 8;
    // Full buckets for the principals reused here.
    await redis?.cli('FLUSHALL');
    interface Timed {
      readonly started: number;
      readonly ended: number;
      readonly failed: string | null;
    }
    const calls: Timed[] = [];
    let killedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    const runClient = async (index: number) => {
      const principal = principals[index] as Principal;
      const addresses = Array.from({ length: 5 }, (_, a) => `127.3.${index + 1}.${a + 1}`);
      const client = new Client(
        { name: `kill-${index}`, version: '1' },
        { versionNegotiation: { mode: { pin: '2026-07-28' } } },
      );
      await client.connect(
        new StreamableHTTPClientTransport(mcpUrl(), { fetch: fetchFrom(...addresses), requestInit: bearer(principal) }),
      );
      let i = 0;
      while (!stop) {
        const started = performance.now();
        let failed: string | null = null;
        try {
          // A call that takes a while, so that some are in flight when the replica dies.
          const search = i++ % 2 === 0;
          const result = (await client.callTool({
            name: search ? 'search_files' : 'read_file',
            arguments: search ? { pattern: '**/*' } : { path: 'README.md' },
          })) as { isError?: boolean; content: { text?: string }[] };
          if (result.isError) failed = result.content[0]?.text ?? 'isError';
        } catch (error) {
          failed = (error as Error).message;
        }
        calls.push({ started, ended: performance.now(), failed });
        // Paced under nginx's per-address limit (5 addresses, 20 requests a second each).
        await new Promise((resolve) => setImmediate(resolve));
      }
      await client.close();
    };
    const running = Promise.all(Array.from({ length: clients }, (_, i) => runClient(i)));
    await until(() => calls.length >= 100, { what: '100 calls before the kill' });
    const victim = replicas[2] as ServingProcess;
    killedAt = performance.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    // A call may reach the replica between the signal and its death: in flight on it all the same.
    const deadAt = performance.now();
    const killedCount = calls.length;
    await until(() => calls.length >= killedCount + 300, { what: '300 calls after the kill', timeoutMs: 30_000 });
    stop = true;
    await running;

    const failures = calls.filter((c) => c.failed !== null);
    // Only calls that were running when the replica died: each client has one call at a time.
    expect(failures.length, [...new Set(failures.map((f) => f.failed))].slice(0, 5).join('\n')).toBeLessThanOrEqual(
      clients,
    );
    for (const failure of failures) {
      expect(failure.started, failure.failed ?? '').toBeLessThan(deadAt);
      expect(failure.ended).toBeGreaterThanOrEqual(killedAt);
    }
    const after = calls.filter((c) => c.started > deadAt);
    expect(after.length).toBeGreaterThanOrEqual(300 - clients);
    expect(after.filter((c) => c.failed !== null)).toEqual([]);
    process.stdout.write(
      `scaling: replica killed under load by ${clients} clients: ${failures.length} calls failed (in flight on it), ` +
        `${after.length} calls after the kill, all served\n`,
    );
  }, 60_000);
});
