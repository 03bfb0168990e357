import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisSettings } from '../../src/config/types.js';
import { freePort } from './ports.js';
import { requireCommand } from './tools.js';
import { until } from './wait.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM, or SIGKILL to play a crash) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port, empty (it keeps nothing on disk). */
  start(): Promise<void>;
  /** Runs one command through redis-cli and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

/** Answers PING with PONG. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (answer.includes('\r\n')) socket.end();
    });
    socket.on('close', () => resolve(answer.startsWith('+PONG')));
    socket.on('error', () => resolve(false));
  });
}

/**
 * A real Redis (Debian's redis-server) on a free loopback port, with no persistence, in a
 * directory of its own, with `extraArgs` (a cluster node's, say). Each test file starts its own
 * and closes it.
 */
export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const binary = requireCommand('redis-server');
  const cliBinary = requireCommand('redis-cli');
  const dir = await mkdtemp(join(tmpdir(), 'mcpd-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async () => {
    const started = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = started;
    started.stdout?.on('data', (chunk: Buffer) => {
      log = `${log}${chunk}`.slice(-4000);
    });
    exited = new Promise((resolve) => started.once('exit', () => resolve()));
    await until(
      async () => {
        if (started.exitCode !== null) throw new Error(`redis-server exited with ${started.exitCode}: ${log}`);
        return pings(port);
      },
      { what: `redis-server on port ${port} to answer PING` },
    );
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    cli: (...args) =>
      new Promise((resolve, reject) => {
        const run = spawn(cliBinary, ['-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        run.stdout.on('data', (chunk: Buffer) => {
          out += chunk;
        });
        run.on('error', reject);
        run.on('exit', (code) =>
          code === 0 ? resolve(out.trim()) : reject(new Error(`redis-cli ${args.join(' ')}: ${code}`)),
        );
      }),
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Shared-state settings for `url`, as a resolved config holds them: standalone, a fresh key
 * prefix (tests sharing a server do not share keys), the `local` fallback, no password or TLS.
 */
export function redisSettings(url: string, overrides: Partial<RedisSettings> = {}): RedisSettings {
  return {
    mode: 'standalone',
    url,
    keyPrefix: `test${Math.random().toString(36).slice(2, 8)}:`,
    connectTimeoutMs: 2000,
    commandTimeoutMs: 1000,
    required: false,
    onUnavailable: 'local',
    password: null,
    tls: null,
    ...overrides,
  } as RedisSettings;
}
