/**
 * What sharing state through Redis costs, and what three replicas give: the built binary serving
 * the demo as one replica and as three (the load spread over them round-robin, as a balancer
 * would), each without Redis and with a real redis-server (so that every call takes its rate
 * token and its quota slot there, and gives the slot back). Same load, interleaved rounds, medians;
 * ratios against one replica without Redis, measured in the same run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONCURRENCY, driveLoad, type RoundResult } from './harness.js';
import { listeningUrl } from './listening.js';
import { startRedis } from './redis.js';
import { modernToolCall } from './toolCalls.js';

const DEMO = fileURLToPath(new URL('../demo', import.meta.url));
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 2000);

interface Variant {
  readonly name: string;
  readonly replicas: number;
  readonly redis: boolean;
}

const VARIANTS: readonly Variant[] = [
  { name: '1 replica', replicas: 1, redis: false },
  { name: '1 replica, Redis', replicas: 1, redis: true },
  { name: '3 replicas', replicas: 3, redis: false },
  { name: '3 replicas, Redis', replicas: 3, redis: true },
];

interface Target {
  readonly variant: Variant;
  readonly urls: string[];
  readonly children: ChildProcess[];
}

async function serve(variant: Variant, dir: string, redisUrl: string, index: number): Promise<Target> {
  const config = join(dir, `scaling-${index}.yaml`);
  writeFileSync(
    config,
    [
      `roots: [{ name: Demo, uri: ${join(DEMO, 'workspace/mcp-demo')} }]`,
      // High enough never to refuse: what is measured is the work of checking them.
      'limits: { maxConcurrentPerPrincipal: 1000, maxConcurrentRequests: 1000, rateLimit: { perSecond: 1000000, burst: 1000000 } }',
      'audit: { sink: file, path: /dev/null }',
      ...(variant.redis
        ? [`cluster: { redis: { url: "${redisUrl}", keyPrefix: "bench${index}:", required: true } }`]
        : []),
      '',
    ].join('\n'),
  );
  const children: ChildProcess[] = [];
  const urls: string[] = [];
  for (let i = 0; i < variant.replicas; i++) {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--log-level', 'info'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    const url = await listeningUrl(child, variant.name);
    // Ready means connected to Redis where it is required.
    for (;;) {
      const ready = await fetch(url.replace(/\/mcp$/, '/ready')).catch(() => undefined);
      if (ready?.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    urls.push(url);
  }
  return { variant, urls, children };
}

function drive(target: Target, calls: number): Promise<RoundResult> {
  return driveLoad(target.variant.name, target.urls, calls, () =>
    modernToolCall('get_file_info', { path: 'README.md' }),
  );
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

export async function scaling(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-scaling-'));
  const redis = await startRedis(dir);
  const targets: Target[] = [];
  try {
    for (const [index, variant] of VARIANTS.entries()) targets.push(await serve(variant, dir, redis.url, index));
    for (const target of targets) await drive(target, 500);
    const rounds = new Map(targets.map((t) => [t.variant.name, [] as RoundResult[]]));
    for (let i = 0; i < ROUNDS; i++) {
      for (const target of targets) rounds.get(target.variant.name)?.push(await drive(target, CALLS_PER_ROUND));
    }
    const base = rounds.get(VARIANTS[0]?.name as string) as RoundResult[];
    const baseRate = median(base.map((r) => r.perSecond));
    const baseP99 = median(base.map((r) => r.p99));
    process.stdout.write(
      `\nscaling: get_file_info over HTTP, ${ROUNDS} interleaved rounds x ${CALLS_PER_ROUND} calls, ${CONCURRENCY} concurrent, ` +
        `round-robin over the replicas; medians (${cpus().length} cores, ${cpus()[0]?.model.trim()})\n`,
    );
    process.stdout.write('| variant | calls/s | p50 ms | p99 ms | throughput x 1 replica | p99 x 1 replica |\n');
    process.stdout.write('| --- | ---: | ---: | ---: | ---: | ---: |\n');
    for (const [name, results] of rounds) {
      const rate = median(results.map((r) => r.perSecond));
      const p50 = median(results.map((r) => r.p50));
      const p99 = median(results.map((r) => r.p99));
      process.stdout.write(
        `| ${name} | ${rate.toFixed(0)} | ${p50.toFixed(2)} | ${p99.toFixed(2)} | ${(rate / baseRate).toFixed(2)} | ${(p99 / baseP99).toFixed(2)} |\n`,
      );
    }
  } finally {
    for (const target of targets) for (const child of target.children) child.kill('SIGTERM');
    await Promise.all(
      targets
        .flatMap((t) => t.children)
        .map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)),
    );
    redis.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
