import { execFileSync } from 'node:child_process';

/** Fails (never skips) when a real component the test needs is not installed. */
export function requireCommand(name: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed: run scripts/ensure-tools.sh (npm test runs it first)`);
  }
}
