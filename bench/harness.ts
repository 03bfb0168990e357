import { type ChildProcess, spawn } from 'node:child_process';
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
