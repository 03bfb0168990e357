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
  /** The signal that killed the process, if one did. */
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  /** Added to this process's environment. */
  readonly env?: Record<string, string>;
  /** The run is killed (SIGKILL) and rejected after this long. */
  readonly timeoutMs?: number;
  /** Called once the child is spawned, e.g. to kill it at a moment of the test's choosing. */
  readonly onSpawn?: (child: ChildProcess) => void;
}

/**
 * Runs `file ARGS` to completion, stdin closed, collecting stdout and stderr. Resolves on 'close',
 * not 'exit', so both streams are read to their end.
 */
export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { timeoutMs = 20_000 } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
      reject(new Error(`${file} ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    options.onSpawn?.(child);
  });
}

/** Runs `mcpd ARGS` to completion. */
export function runMcpd(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<RunResult> {
  assertBuilt();
  return runCommand(process.execPath, [MCPD_BIN, ...args], { env, timeoutMs });
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
  /** A command the server runs under (e.g. `runuser -u nobody --`). */
  wrapper: readonly string[] = [],
): Promise<ServingProcess> {
  assertBuilt();
  const [file, ...prefix] = wrapper.length > 0 ? wrapper : [process.execPath];
  const command = wrapper.length > 0 ? [...prefix, process.execPath] : [];
  const child = spawn(file as string, [...command, MCPD_BIN, 'serve', ...args], {
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
      // Whole lines only: a chunk may end inside one, which parses once the rest has arrived.
      for (const line of stderr.split('\n').slice(0, -1)) {
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
