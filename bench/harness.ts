import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { listeningUrl } from './listening.js';
import { modernToolCall } from './toolCalls.js';

const DEMO = fileURLToPath(new URL('../demo', import.meta.url));
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 2000);
export const CONCURRENCY = 16;
/** Calls per variant before the first measured round. */
const WARM_UP_CALLS = 500;

/**
 * How every variant's config begins: the demo's project root, the limits out of the way, the audit
 * written (to /dev/null) as in production.
 */
const COMMON_CONFIG = [
  `roots: [{ name: Demo, uri: ${join(DEMO, 'workspace/mcp-demo')} }]`,
  'limits: { maxConcurrentPerPrincipal: 1000, maxConcurrentRequests: 1000, rateLimit: { perSecond: 1000000, burst: 1000000 } }',
  'audit: { sink: file, path: /dev/null }',
  '',
].join('\n');

export interface Variant {
  /** Its row in the table. */
  readonly name: string;
  /** YAML appended to the common config. */
  readonly config: string;
  /** Sent as `Authorization: Bearer` on every call. */
  readonly token?: string;
}

export interface Comparison {
  /** What is measured; the table's title goes on with the load. */
  readonly title: string;
  readonly variants: readonly Variant[];
  /** The variant the ratios are taken against. */
  readonly baseline: string;
  /** Files written beside the configs (name -> contents), for paths a config names relatively. */
  readonly files?: Readonly<Record<string, string>>;
  /** A line printed under the table, read while the servers still run. */
  readonly footnote?: () => string;
}

/**
 * The built binary once per variant, each with its own config in one temporary directory, driven by
 * the same load in interleaved rounds; prints medians and ratios against the baseline, then stops
 * every server and removes the directory.
 */
export async function compare(comparison: Comparison): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-'));
  const targets: Target[] = [];
  try {
    for (const [name, contents] of Object.entries(comparison.files ?? {})) writeFileSync(join(dir, name), contents);
    for (const [index, variant] of comparison.variants.entries()) {
      const config = join(dir, `variant-${index}.yaml`);
      writeFileSync(config, `${COMMON_CONFIG}${variant.config}`);
      targets.push(await serve(variant, config));
    }
    const results = await interleave(targets);
    report(
      `${comparison.title} on get_file_info (${ROUNDS} interleaved rounds x ${CALLS_PER_ROUND} calls, ${CONCURRENCY} concurrent; medians)`,
      results,
      comparison.baseline,
    );
    if (comparison.footnote) process.stdout.write(`${comparison.footnote()}\n`);
  } finally {
    await stopAll(targets);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Target {
  readonly name: string;
  readonly url: string;
  readonly token: string | undefined;
  readonly child: ChildProcess;
}

/**
 * Starts the built binary on a free loopback port and resolves once it logs its URL. At log level
 * info, as in production: its request log is part of the cost measured.
 */
function serve(variant: Variant, config: string): Promise<Target> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--log-level', 'info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return listeningUrl(child, variant.name).then((url) => ({ name: variant.name, url, token: variant.token, child }));
}

async function stopAll(targets: readonly Target[]): Promise<void> {
  await Promise.all(
    targets.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** The cheap call every benchmark drives: metadata of one small file (a policy decision, a stat, an audit line). */
const CALL = (token?: string) => modernToolCall('get_file_info', { path: 'README.md' }, token);

export interface RoundResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

/**
 * `calls` requests from CONCURRENCY workers on keep-alive connections, the i-th made by
 * `request(i)` and sent to `urls[i % urls.length]` (round-robin, as a balancer would); any answer
 * but 200 stops the run.
 */
export async function driveLoad(
  name: string,
  urls: readonly string[],
  calls: number,
  request: (index: number) => { headers: Record<string, string>; body: string },
): Promise<RoundResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls) {
      const index = next++;
      const t0 = performance.now();
      const { headers, body } = request(index);
      const response = await fetch(urls[index % urls.length] as string, { method: 'POST', headers, body });
      if (response.status !== 200) throw new Error(`${name}: HTTP ${response.status}`);
      await response.arrayBuffer();
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

/** `calls` cheap tool calls against one server. */
function drive(target: Target, calls: number): Promise<RoundResult> {
  return driveLoad(target.name, [target.url], calls, () => CALL(target.token));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Runs every target once to warm up, then ROUNDS times in turn, so machine noise falls on all alike. */
async function interleave(targets: readonly Target[]): Promise<Map<string, RoundResult[]>> {
  for (const target of targets) await drive(target, Math.min(CALLS_PER_ROUND, WARM_UP_CALLS));
  const results = new Map(targets.map((target) => [target.name, [] as RoundResult[]]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const target of targets) results.get(target.name)?.push(await drive(target, CALLS_PER_ROUND));
  }
  return results;
}

/** Prints medians and the ratios against `baseline`, measured in the same run. */
function report(title: string, results: Map<string, RoundResult[]>, baseline: string): void {
  const base = results.get(baseline) as RoundResult[];
  const baseRate = median(base.map((r) => r.perSecond));
  const baseP50 = median(base.map((r) => r.p50));
  process.stdout.write(`\n${title}\n`);
  process.stdout.write('variant          calls/s   p50 ms   p99 ms   throughput vs base   p50 vs base\n');
  for (const [name, rounds] of results) {
    const rate = median(rounds.map((r) => r.perSecond));
    const p50 = median(rounds.map((r) => r.p50));
    const p99 = median(rounds.map((r) => r.p99));
    process.stdout.write(
      `${name.padEnd(16)} ${rate.toFixed(0).padStart(7)} ${p50.toFixed(2).padStart(8)} ${p99.toFixed(2).padStart(8)} ` +
        `${(rate / baseRate).toFixed(3).padStart(20)} ${(p50 / baseP50).toFixed(3).padStart(13)}\n`,
    );
  }
}
