import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const DEMO = fileURLToPath(new URL('../demo', import.meta.url));
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface Served {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
}

/** Starts the built binary on a free loopback port and resolves with its URL. */
export function serve(name: string, config: string): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--log-level', 'info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const match = /"url":"([^"]+)"/.exec(stderr);
      if (match?.[1]) resolve({ name, url: match[1], child });
    });
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code}: ${stderr}`)));
  });
}

export async function stopAll(served: readonly Served[]): Promise<void> {
  await Promise.all(
    served.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.child.exitCode !== null) return resolve();
          s.child.once('exit', () => resolve());
          s.child.kill('SIGTERM');
        }),
    ),
  );
}

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
/** The cheap call every benchmark drives: metadata of one small file (a policy decision, a stat, an audit line). */
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'get_file_info', arguments: { path: 'README.md' }, _meta: META },
});

export interface RoundResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

/** `calls` cheap tool calls against one server from `concurrency` workers on keep-alive connections. */
export async function drive(
  target: Served,
  token: string | undefined,
  calls: number,
  concurrency: number,
): Promise<RoundResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls) {
      next += 1;
      const t0 = performance.now();
      const response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'get_file_info',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: BODY,
      });
      if (response.status !== 200) throw new Error(`${target.name}: HTTP ${response.status}`);
      await response.arrayBuffer();
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Runs every target once to warm up, then `rounds` times in turn, so machine noise falls on all alike. */
export async function interleave(
  targets: readonly { served: Served; token: string | undefined }[],
  rounds: number,
  calls: number,
  concurrency: number,
): Promise<Map<string, RoundResult[]>> {
  for (const target of targets) await drive(target.served, target.token, Math.min(calls, 500), concurrency);
  const results = new Map<string, RoundResult[]>();
  for (let i = 0; i < rounds; i++) {
    for (const target of targets) {
      const result = await drive(target.served, target.token, calls, concurrency);
      results.set(target.served.name, [...(results.get(target.served.name) ?? []), result]);
    }
  }
  return results;
}

/** Prints medians and the ratios against `baseline`, measured in the same run. */
export function report(title: string, results: Map<string, RoundResult[]>, baseline: string): void {
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
