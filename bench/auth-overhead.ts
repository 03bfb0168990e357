/**
 * The cost of authentication on a cheap tool call: the same built binary serving the demo with
 * auth.mode none, apiKeys and jwt, driven by the same load, in interleaved rounds so the machine's
 * noise falls on all three alike. Reported as ratios against `none`, measured in this run.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { DEMO, type Served, serve, stopAll } from './harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 2000);
const CONCURRENCY = 16;
const RESOURCE = 'https://mcp.bench.invalid/mcp';
const ISSUER = 'https://issuer.bench.invalid';

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'get_file_info', arguments: { path: 'README.md' }, _meta: META },
});

async function round(
  target: Served,
  token: string | undefined,
): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < CALLS_PER_ROUND) {
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
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

export async function authOverhead(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-'));
  // The demo's project root, the limits out of the way, the audit written (to /dev/null) as in production.
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
  const apiKey = 'bench-api-key-0123456789';
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  writeFileSync(
    join(dir, 'jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'b1', alg: 'ES256' }] }),
  );
  const jwt = await new SignJWT({ scope: 'mcpd:read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'b1' })
    .setIssuer(ISSUER)
    .setAudience(RESOURCE)
    .setSubject('bench')
    .setExpirationTime('1h')
    .sign(privateKey);
  const targets: { served: Served; token: string | undefined }[] = [];
  try {
    targets.push({ served: await serve('none', write('none', '')), token: undefined });
    targets.push({
      served: await serve(
        'apiKeys',
        write(
          'keys',
          `auth:\n  mode: apiKeys\n  apiKeys:\n    - { principal: bench, sha256: ${createHash('sha256').update(apiKey).digest('hex')}, scopes: [mcpd:read] }\n`,
        ),
      ),
      token: apiKey,
    });
    targets.push({
      served: await serve(
        'jwt',
        write(
          'jwt',
          `server: { publicUrl: ${RESOURCE} }\nauth:\n  mode: jwt\n  jwt: { issuer: ${ISSUER}, jwksFile: ./jwks.json }\n`,
        ),
      ),
      token: jwt,
    });
    for (const target of targets) await round(target.served, target.token); // warm up
    const results = new Map<string, { perSecond: number[]; p50: number[]; p99: number[] }>();
    for (let i = 0; i < ROUNDS; i++) {
      for (const target of targets) {
        const r = await round(target.served, target.token);
        const entry = results.get(target.served.name) ?? { perSecond: [], p50: [], p99: [] };
        entry.perSecond.push(r.perSecond);
        entry.p50.push(r.p50);
        entry.p99.push(r.p99);
        results.set(target.served.name, entry);
      }
    }
    const baseline = results.get('none') as { perSecond: number[]; p50: number[] };
    process.stdout.write(
      `\nauth overhead on get_file_info (${ROUNDS} interleaved rounds x ${CALLS_PER_ROUND} calls, ${CONCURRENCY} concurrent; medians)\n`,
    );
    process.stdout.write('mode      calls/s   p50 ms   p99 ms   throughput vs none   p50 vs none\n');
    for (const [name, r] of results) {
      const perSecond = median(r.perSecond);
      const p50 = median(r.p50);
      process.stdout.write(
        `${name.padEnd(9)} ${perSecond.toFixed(0).padStart(7)} ${p50.toFixed(2).padStart(8)} ${median(r.p99).toFixed(2).padStart(8)} ` +
          `${(perSecond / median(baseline.perSecond)).toFixed(3).padStart(20)} ${(p50 / median(baseline.p50)).toFixed(3).padStart(13)}\n`,
      );
    }
  } finally {
    await stopAll(targets.map((t) => t.served));
    rmSync(dir, { recursive: true, force: true });
  }
}
