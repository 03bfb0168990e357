import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { promisify } from 'node:util';

/** The real nginx in tests: the repository's config with test ports, certificates of the test's own CA. */

const _run = promisify(execFile);

/**
 * The one change made to the real nginx.conf: `listen 443` and `listen 80` become the given free
 * ports (the test cannot bind privileged ports, nor collide with anything else). Nothing else.
 */
export function withTestPorts(conf: string, httpsPort: number, httpPort: number): { text: string; replaced: number } {
  let replaced = 0;
  const text = conf.replace(/^(\s*listen\s+)(443|80)(?=[\s;])/gm, (_match, head: string, port: string) => {
    replaced += 1;
    return `${head}${port === '443' ? httpsPort : httpPort}`;
  });
  return { text, replaced };
}

/** deploy/nginx/upstreams.conf with each `server mcpd-N:8000` pointed at a loopback replica. */
export function withTestUpstreams(conf: string, ports: number[]): { text: string; replaced: number } {
  let replaced = 0;
  const text = conf.replace(/\bserver mcpd-(\d):8000\b/g, (_match, n: string) => {
    replaced += 1;
    return `server 127.0.0.1:${ports[Number(n) - 1]}`;
  });
  return { text, replaced };
}

/**
 * Starts nginx with its stdout on a file. nginx opens `access_log /dev/stdout` by path, which works
 * for a pipe or a file (as in a container) but not for the socketpair Node gives a child for
 * stdio: 'pipe' (ENXIO). stderr (error_log stderr) stays a pipe nginx writes to directly.
 */
export function spawnNginx(bin: string, args: string[], stdoutFile: string): ChildProcess {
  const out = openSync(stdoutFile, 'a');
  try {
    return spawn(bin, args, { stdio: ['ignore', out, 'pipe'] });
  } finally {
    closeSync(out);
  }
}

export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
