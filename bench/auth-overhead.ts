/**
 * The cost of authentication on a cheap tool call: the same built binary serving the demo with
 * auth.mode none, apiKeys and jwt, driven by the same load, in interleaved rounds so the machine's
 * noise falls on all three alike. Reported as ratios against `none`, measured in this run.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { DEMO, interleave, report, type Served, serve, stopAll } from './harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 2000);
const CONCURRENCY = 16;
const RESOURCE = 'https://mcp.bench.invalid/mcp';
const ISSUER = 'https://issuer.bench.invalid';

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
    const results = await interleave(targets, ROUNDS, CALLS_PER_ROUND, CONCURRENCY);
    report(
      `auth overhead on get_file_info (${ROUNDS} interleaved rounds x ${CALLS_PER_ROUND} calls, ${CONCURRENCY} concurrent; medians)`,
      results,
      'none',
    );
  } finally {
    await stopAll(targets.map((t) => t.served));
    rmSync(dir, { recursive: true, force: true });
  }
}
