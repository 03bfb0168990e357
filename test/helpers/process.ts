import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './workspace.js';

/** The built binary: tests of process behaviour run exactly what users run. */
export const MCPD_BIN = join(REPO, 'dist/main.js');

export function assertBuilt(): void {
  if (!existsSync(MCPD_BIN)) throw new Error(`${MCPD_BIN} is missing: run "npm run build" first (npm test does)`);
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `mcpd ARGS` to completion. */
export function runMcpd(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<RunResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MCPD_BIN, ...args], { env: { ...process.env, ...env }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mcpd ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ServingProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code when the process exits (null if a signal killed it). */
  readonly exited: Promise<number | null>;
  /** Signals the process (unless it already exited) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `mcpd serve ARGS` and resolves once it logs the URL it listens on. */
export function serveMcpd(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<ServingProcess> {
  assertBuilt();
  const child = spawn(process.execPath, [MCPD_BIN, 'serve', ...args], {
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mcpd serve did not start in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'listening' && entry.url) {
          clearTimeout(timer);
          const url = entry.url;
          resolve({
            child,
            url,
            stderr: () => stderr,
            exited,
            stop: async (signal = 'SIGTERM') => {
              if (child.exitCode === null) child.kill(signal);
              return exited;
            },
          });
          return;
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mcpd serve exited with ${code} before listening\n${stderr}`));
    });
  });
}
