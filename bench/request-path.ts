/**
 * The request path against its peers, in one run: raw node:http answering a fixed JSON-RPC result
 * (the machine's limit), the SDK's own HTTP entry serving one echo tool (what a team would write
 * by hand), and mcpd with authentication, metrics and the audit on. Each server is pinned to one
 * core and the load generator (autocannon, in its own process) to the other; every target is
 * driven in interleaved rounds at 10 and 50 connections, so the machine's noise falls on all of
 * them alike. Then memory: idle RSS after warm-up, and what stays retained after a forced GC
 * under a sustained load, as a slope per 1,000 requests.
 *
 * BENCH_SECONDS (default 5) per run, BENCH_ROUNDS (default 3), BENCH_MEMORY_SECONDS (default 120;
 * 0 skips the memory part).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { listeningUrl } from './listening.js';
import { legacyToolCall, modernToolCall } from './toolCalls.js';

const run = promisify(execFile);
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const BIN = here('../dist/main.js');
const DEMO = here('../demo');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MEMORY_SECONDS = Number(process.env.BENCH_MEMORY_SECONDS ?? 120);
const MEMORY_STEP_SECONDS = 15;
const API_KEY = 'bench-api-key-0123456789';
/** Server on one core, load on the other (a machine with one core shares it). */
const SERVER_CORE = cpus().length > 1 ? '1' : '0';
const LOAD_CORE = '0';

interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly memoryFile: string;
}

interface Target {
  readonly name: string;
  readonly server: Server;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** What a correct answer contains: checked once before measuring. */
  readonly expect: string;
}

interface LoadResult {
  readonly requests: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

type Call = (
  tool: string,
  args: Record<string, unknown>,
  token?: string,
) => { headers: Record<string, string>; body: string };

/** A target on `server` for one era's request. */
const on =
  (call: Call) =>
  (server: Server, tool: string, args: Record<string, unknown>, token?: string): Omit<Target, 'name' | 'expect'> => ({
    server,
    ...call(tool, args, token),
  });
const modern = on(modernToolCall);
const legacy = on(legacyToolCall);

function start(name: string, args: readonly string[], dir: string): Promise<Server> {
  const memoryFile = join(dir, `${name}.memory.json`);
  const child = spawn(
    'taskset',
    ['-c', SERVER_CORE, process.execPath, '--expose-gc', '-r', here('./peers/memory-probe.cjs'), ...args],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BENCH_MEMORY_FILE: memoryFile } },
  );
  return listeningUrl(child, name).then((url) => ({ name, url, child, memoryFile }));
}

async function stop(servers: readonly Server[]): Promise<void> {
  await Promise.all(
    servers.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function load(target: Target, connections: number, seconds: number): Promise<LoadResult> {
  const { stdout } = await run(
    'taskset',
    [
      '-c',
      LOAD_CORE,
      process.execPath,
      here('./peers/load.mjs'),
      JSON.stringify({
        url: target.server.url,
        headers: target.headers,
        body: target.body,
        connections,
        duration: seconds,
      }),
    ],
    { maxBuffer: 1 << 20 },
  );
  const result = JSON.parse(stdout) as LoadResult;
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${target.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return result;
}

/** One call, checked: a bench of wrong answers measures nothing. */
async function check(target: Target): Promise<void> {
  const response = await fetch(target.server.url, { method: 'POST', headers: target.headers, body: target.body });
  const text = await response.text();
  if (response.status !== 200 || !text.includes(target.expect) || text.includes('"isError":true')) {
    throw new Error(`${target.name} answered ${response.status}: ${text.slice(0, 300)}`);
  }
}

/** Process memory after two forced collections, read through the preloaded probe. */
async function memory(server: Server): Promise<{ rss: number; heapUsed: number }> {
  const before = (() => {
    try {
      return statSync(server.memoryFile).mtimeMs;
    } catch {
      return 0;
    }
  })();
  server.child.kill('SIGUSR2');
  for (let i = 0; i < 200; i++) {
    try {
      if (statSync(server.memoryFile).mtimeMs !== before) {
        const sample = JSON.parse(readFileSync(server.memoryFile, 'utf8')) as { rss: number; heapUsed: number };
        if (sample.rss > 0) return sample;
      }
    } catch {
      // Not written yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${server.name} did not report its memory`);
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/** Requests per second over rounds, and the sustained memory slope, for each mcpd target and its peers. */
export async function requestPath(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpd-bench-path-'));
  const servers: Server[] = [];
  try {
    const keyHash = createHash('sha256').update(API_KEY).digest('hex');
    const config = join(dir, 'mcpd.yaml');
    writeFileSync(
      config,
      [
        `roots: [{ name: Demo, uri: ${join(DEMO, 'workspace/mcp-demo')} }]`,
        'limits: { maxConcurrentPerPrincipal: 1000, maxConcurrentRequests: 1000, rateLimit: { perSecond: 1000000, burst: 1000000 } }',
        `audit: { sink: file, path: ${join(dir, 'audit.log')} }`,
        'auth:',
        '  mode: apiKeys',
        `  apiKeys: [{ principal: bench, sha256: ${keyHash}, scopes: [mcpd:read] }]`,
        '',
      ].join('\n'),
    );
    const raw = await start('raw', [here('./peers/raw-http.mjs')], dir);
    servers.push(raw);
    const sdk = await start('sdk', [here('./peers/sdk-handler.mjs')], dir);
    servers.push(sdk);
    const mcpd = await start('mcpd', [BIN, 'serve', '--config', config, '--port', '0', '--log-level', 'info'], dir);
    servers.push(mcpd);

    const targets: Target[] = [
      {
        name: 'raw node:http, fixed answer',
        server: raw,
        headers: { 'content-type': 'application/json' },
        body: '{}',
        expect: '"ok"',
      },
      { name: 'SDK handler, echo (2026-07-28)', ...modern(sdk, 'echo', { text: 'hi' }), expect: '"hi"' },
      { name: 'SDK handler, echo (2025-11-25)', ...legacy(sdk, 'echo', { text: 'hi' }), expect: '"hi"' },
      { name: 'mcpd list_roots (2026-07-28)', ...modern(mcpd, 'list_roots', {}, API_KEY), expect: '"roots"' },
      {
        name: 'mcpd get_file_info (2026-07-28)',
        ...modern(mcpd, 'get_file_info', { path: 'README.md' }, API_KEY),
        expect: '"etag"',
      },
      { name: 'mcpd list_roots (2025-11-25)', ...legacy(mcpd, 'list_roots', {}, API_KEY), expect: '"roots"' },
      {
        name: 'mcpd get_file_info (2025-11-25)',
        ...legacy(mcpd, 'get_file_info', { path: 'README.md' }, API_KEY),
        expect: '"etag"',
      },
    ];
    for (const target of targets) await check(target);
    for (const target of targets) await load(target, 10, 2);

    const idle = new Map<string, number>();
    for (const server of servers) idle.set(server.name, (await memory(server)).rss);

    const levels = [10, 50];
    const results = new Map<string, LoadResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const connections of levels) {
        for (const target of targets) {
          const key = `${target.name}@${connections}`;
          results.set(key, [...(results.get(key) ?? []), await load(target, connections, SECONDS)]);
        }
      }
    }

    const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`;
    process.stdout.write(
      `\nrequest path: ${ROUNDS} interleaved rounds x ${SECONDS} s per target, autocannon on core ${LOAD_CORE}, ` +
        `each server on core ${SERVER_CORE}; medians (${machine})\n`,
    );
    for (const connections of levels) {
      const rate = (name: string) => median((results.get(`${name}@${connections}`) ?? []).map((r) => r.perSecond));
      const p99 = (name: string) => median((results.get(`${name}@${connections}`) ?? []).map((r) => r.p99));
      const rawRate = rate('raw node:http, fixed answer');
      process.stdout.write(`\n${connections} connections\n`);
      process.stdout.write(
        `${'target'.padEnd(34)} ${'req/s'.padStart(8)} ${'x raw'.padStart(7)} ${'x SDK'.padStart(7)} ${'p99 ms'.padStart(7)} ${'SDK p99'.padStart(8)}\n`,
      );
      for (const target of targets) {
        const peer = target.name.includes('2025-11-25')
          ? 'SDK handler, echo (2025-11-25)'
          : 'SDK handler, echo (2026-07-28)';
        const vsSdk = target.server === raw ? '' : (rate(target.name) / rate(peer)).toFixed(2);
        process.stdout.write(
          `${target.name.padEnd(34)} ${rate(target.name).toFixed(0).padStart(8)} ${(rate(target.name) / rawRate).toFixed(3).padStart(7)} ` +
            `${vsSdk.padStart(7)} ${p99(target.name).toFixed(0).padStart(7)} ${target.server === raw ? '' : p99(peer).toFixed(0).padStart(8)}\n`,
        );
      }
    }

    const rawIdle = idle.get('raw') as number;
    process.stdout.write('\nidle RSS after warm-up and a forced GC\n');
    for (const server of servers) {
      const rss = idle.get(server.name) as number;
      process.stdout.write(
        `${server.name.padEnd(6)} ${(rss / 2 ** 20).toFixed(1).padStart(7)} MB  x raw ${(rss / rawIdle).toFixed(2)}\n`,
      );
    }

    if (MEMORY_SECONDS > 0) {
      process.stdout.write(
        `\nretained under load: ${MEMORY_SECONDS} s at 10 connections, sampled every ${MEMORY_STEP_SECONDS} s after a forced GC\n`,
      );
      for (const target of [targets[3] as Target, targets[1] as Target]) {
        const points: [number, number][] = [];
        const rssPoints: [number, number][] = [];
        let requests = 0;
        const first = await memory(target.server);
        points.push([0, first.heapUsed]);
        rssPoints.push([0, first.rss]);
        for (let elapsed = 0; elapsed < MEMORY_SECONDS; elapsed += MEMORY_STEP_SECONDS) {
          requests += (await load(target, 10, MEMORY_STEP_SECONDS)).requests;
          const sample = await memory(target.server);
          points.push([requests, sample.heapUsed]);
          rssPoints.push([requests, sample.rss]);
        }
        process.stdout.write(
          `${target.name.padEnd(34)} ${requests} requests: heap ${((slope(points) * 1000) / 1024).toFixed(1)} KB ` +
            `and RSS ${((slope(rssPoints) * 1000) / 1024).toFixed(1)} KB per 1,000 requests\n`,
        );
      }
    }
  } finally {
    await stop(servers);
    rmSync(dir, { recursive: true, force: true });
  }
}
