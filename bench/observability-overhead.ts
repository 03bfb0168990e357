/**
 * The cost of metrics plus tracing on a cheap tool call: the same built binary with both off, and
 * with metrics on and every request traced (sampled at 1.0) to an OTLP/HTTP sink on loopback, in
 * interleaved rounds. Reported as ratios against "both off", measured in this run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO, interleave, report, type Served, serve, stopAll } from './harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 2000);
const CONCURRENCY = 16;

export async function observabilityOverhead(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-'));
  // The collector: accepts and drops spans, as fast as it can.
  let exported = 0;
  const sink = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => {
      exported += chunk.length;
    });
    req.on('end', () => res.end('{}'));
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const { port } = sink.address() as AddressInfo;
  const common = [
    `roots: [{ name: Demo, uri: ${join(DEMO, 'workspace/mcp-demo')} }]`,
    'limits: { maxConcurrentPerPrincipal: 1000, maxConcurrentRequests: 1000, rateLimit: { perSecond: 1000000, burst: 1000000 } }',
    'audit: { sink: file, path: /dev/null }',
    '',
  ].join('\n');
  const write = (name: string, extra: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `${common}${extra}`);
    return file;
  };
  const targets: { served: Served; token: undefined }[] = [];
  try {
    targets.push({ served: await serve('both off', write('off', 'metrics: { enabled: false }\n')), token: undefined });
    targets.push({
      served: await serve('metrics only', write('metrics', 'metrics: { enabled: true }\n')),
      token: undefined,
    });
    targets.push({
      served: await serve(
        'metrics+tracing',
        write(
          'on',
          `metrics: { enabled: true }\ntracing: { enabled: true, sampleRatio: 1, endpoint: "http://127.0.0.1:${port}/v1/traces" }\n`,
        ),
      ),
      token: undefined,
    });
    const results = await interleave(targets, ROUNDS, CALLS_PER_ROUND, CONCURRENCY);
    report(
      `metrics + tracing overhead on get_file_info (${ROUNDS} interleaved rounds x ${CALLS_PER_ROUND} calls, ${CONCURRENCY} concurrent; medians)`,
      results,
      'both off',
    );
    process.stdout.write(`(${(exported / 1e6).toFixed(1)} MB of spans exported to the sink)\n`);
  } finally {
    await stopAll(targets.map((t) => t.served));
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
