/**
 * Machine anchors: what the same work costs with no MCP server at all (find, fd, cat, a bare
 * readdir or stat in node, an empty node process). They put each server's time on a scale that
 * travels between machines.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface CommandRun {
  readonly ms: number;
  /** Bytes the command wrote to stdout. */
  readonly bytes: number;
  /** Lines it wrote (for find and fd: paths). */
  readonly lines: number;
}

/** Runs a command to its end, reading all of its stdout as a client reads a server's answer. */
export function runCommand(command: string, args: readonly string[]): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let lines = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) lines += 1;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = `${stderr}${chunk}`.slice(-2000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code !== 0) reject(new Error(`${command} exited with ${code}: ${stderr}`));
      else resolve({ ms, bytes, lines });
    });
  });
}

const works = (command: string, args: readonly string[]) => spawnSync(command, args, { stdio: 'ignore' }).status === 0;

/**
 * fd, as Debian names it (`fdfind`, package fd-find) or as upstream does (`fd`); installed with
 * apt-get when missing and we are root (or have sudo). Undefined when it cannot be had: the
 * search rows then go without an anchor, and the output says why.
 */
export function findFd(): { command?: string; note?: string } {
  for (const command of ['fdfind', 'fd']) {
    const version = spawnSync(command, ['--version'], { encoding: 'utf8' });
    if (version.status === 0 && version.stdout.startsWith('fd')) return { command };
  }
  if (!works('apt-get', ['--version'])) return { note: 'fd is not installed and there is no apt-get to install it' };
  const asRoot = process.getuid?.() === 0 ? [] : works('sudo', ['-n', 'true']) ? ['sudo', '-n'] : undefined;
  if (!asRoot) return { note: 'fd is not installed, and installing fd-find needs root' };
  process.stdout.write('installing fd-find with apt-get for the search anchor\n');
  const install = (args: string[]) => {
    const [command, ...rest] = [...asRoot, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args];
    execFileSync(command as string, rest, { stdio: 'ignore' });
  };
  try {
    try {
      install(['install', '-y', '--no-install-recommends', 'fd-find']);
    } catch {
      // The package lists may be missing (a fresh container): fetch them once and try again.
      install(['update', '-qq']);
      install(['install', '-y', '--no-install-recommends', 'fd-find']);
    }
  } catch (error) {
    return { note: `fd-find could not be installed: ${(error as Error).message.split('\n')[0]}` };
  }
  return works('fdfind', ['--version']) ? { command: 'fdfind' } : { note: 'fd-find installed but fdfind does not run' };
}

/** Resident set size of a process, in bytes, from /proc. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
