/**
 * The inputs of the capacity model (docs/capacity.md), measured on three replicas sharing a real
 * Redis: what an idle subscriptions/listen stream costs a replica in memory, what a replica serves
 * of a call mix with and without many such streams open, and how many Redis commands a call
 * makes. A bounded simulation of the deployment the model describes: many virtual clients, most of
 * them holding an idle stream, the rest calling.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONCURRENCY, driveLoad, type RoundResult } from './harness.js';
import { listeningUrl } from './listening.js';
import { startRedis } from './redis.js';
import { modernToolCall } from './toolCalls.js';

const DEMO = fileURLToPath(new URL('../demo', import.meta.url));
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const REPLICAS = 3;
/** Idle streams per replica in the loaded run. */
const STREAMS_PER_REPLICA = Number(process.env.BENCH_STREAMS ?? 300);
const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
/** The call mix of an agent at work: mostly reads and listings, some searches. */
const MIX: readonly [string, Record<string, unknown>][] = [
  ['read_file', { path: 'README.md' }],
  ['list_directory', { path: 'docs' }],
  ['get_file_info', { path: 'data/sales.csv' }],
  ['read_file', { path: 'docs/architecture.md' }],
  ['search_files', { pattern: '*.md' }],
];

const rssOf = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;

/** An idle subscriptions/listen stream held open, resolved once acknowledged. */
function openStream(url: string): Promise<() => void> {
  const { headers, body } = {
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'subscriptions/listen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'subscriptions/listen',
      params: {
        notifications: { resourcesListChanged: true },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'capacity-stream', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent: false }, (res) => {
      res.setEncoding('utf8');
      let seen = '';
      res.on('data', (chunk: string) => {
        seen += chunk;
        if (seen.includes('subscriptions/acknowledged')) {
          seen = '';
          resolve(() => req.destroy());
        }
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface Replica {
  readonly url: string;
  readonly child: ChildProcess;
}

async function metricSum(replica: Replica, pattern: RegExp): Promise<number> {
  const text = await (await fetch(replica.url.replace(/\/mcp$/, '/metrics'))).text();
  return [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function callMix(replicas: readonly Replica[], calls: number): Promise<RoundResult> {
  return driveLoad(
    'capacity',
    replicas.map((replica) => replica.url),
    calls,
    (index) => {
      const [tool, args] = MIX[index % MIX.length] as [string, Record<string, unknown>];
      return modernToolCall(tool, args);
    },
  );
}

export async function capacity(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-capacity-'));
  const redis = await startRedis(dir);
  const replicas: Replica[] = [];
  const streams: (() => void)[] = [];
  try {
    const config = join(dir, 'capacity.yaml');
    writeFileSync(
      config,
      [
        `roots: [{ name: Demo, uri: ${join(DEMO, 'workspace/mcp-demo')} }]`,
        'limits: { maxConcurrentPerPrincipal: 1000, maxConcurrentRequests: 1000, rateLimit: { perSecond: 1000000, burst: 1000000 },',
        `  maxSubscriptionStreams: ${STREAMS_PER_REPLICA * 2}, maxSubscriptionStreamsPerPrincipal: ${STREAMS_PER_REPLICA * 2} }`,
        'audit: { sink: file, path: /dev/null }',
        `cluster: { redis: { url: "${redis.url}", required: true } }`,
        '',
      ].join('\n'),
    );
    for (let i = 0; i < REPLICAS; i++) {
      const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--log-level', 'info'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const url = await listeningUrl(child, `replica ${i}`);
      for (;;) {
        if ((await fetch(url.replace(/\/mcp$/, '/ready')).catch(() => undefined))?.status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      replicas.push({ url, child });
    }
    await callMix(replicas, 600);
    const quiet = await callMix(replicas, CALLS);
    const idleRss = replicas.map((r) => rssOf(r.child.pid as number));
    const redisBefore = await Promise.all(
      replicas.map((r) => metricSum(r, /^mcpd_redis_command_duration_seconds_count\{[^}]*\} (\d+)/gm)),
    );
    for (const replica of replicas) {
      for (let i = 0; i < STREAMS_PER_REPLICA; i++) streams.push(await openStream(replica.url));
    }
    const streamRss = replicas.map((r) => rssOf(r.child.pid as number));
    const loaded = await callMix(replicas, CALLS);
    const redisAfter = await Promise.all(
      replicas.map((r) => metricSum(r, /^mcpd_redis_command_duration_seconds_count\{[^}]*\} (\d+)/gm)),
    );
    const redisPerCall = (redisAfter.reduce((a, b) => a + b, 0) - redisBefore.reduce((a, b) => a + b, 0)) / CALLS;
    const perStream =
      streamRss.reduce((sum, rss, i) => sum + (rss - (idleRss[i] as number)), 0) / (REPLICAS * STREAMS_PER_REPLICA);
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    process.stdout.write(
      `\ncapacity: ${REPLICAS} replicas sharing Redis, ${STREAMS_PER_REPLICA} idle listen streams each; ` +
        `call mix (${MIX.map(([tool]) => tool).join(', ')}), ${CALLS} calls, ${CONCURRENCY} concurrent ` +
        `(${cpus().length} cores, ${cpus()[0]?.model.trim()})\n`,
    );
    process.stdout.write('| measure | value |\n| --- | ---: |\n');
    process.stdout.write(`| calls/s, all replicas, no streams | ${quiet.perSecond.toFixed(0)} |\n`);
    process.stdout.write(`| p99 ms, no streams | ${quiet.p99.toFixed(1)} |\n`);
    process.stdout.write(
      `| calls/s, all replicas, ${REPLICAS * STREAMS_PER_REPLICA} streams open | ${loaded.perSecond.toFixed(0)} |\n`,
    );
    process.stdout.write(`| p99 ms, streams open | ${loaded.p99.toFixed(1)} |\n`);
    process.stdout.write(
      `| resident memory per replica, no streams | ${mb(idleRss.reduce((a, b) => a + b, 0) / REPLICAS)} MB |\n`,
    );
    process.stdout.write(`| resident memory per idle stream | ${(perStream / 1024).toFixed(1)} KiB |\n`);
    process.stdout.write(`| Redis commands per call | ${redisPerCall.toFixed(2)} |\n`);
  } finally {
    for (const close of streams) close();
    for (const replica of replicas) replica.child.kill('SIGTERM');
    await Promise.all(
      replicas.map((r) => (r.child.exitCode === null ? new Promise((resolve) => r.child.once('exit', resolve)) : null)),
    );
    redis.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
