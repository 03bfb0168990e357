import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with the URL a started `mcpd serve` (or a peer that logs the same way) says it listens
 * on, from its JSON log on stderr; rejects with what it said if it exits first. Once it listens,
 * its log is drained (a full pipe would stall it) but not kept.
 */
export function listeningUrl(child: ChildProcess, name: string): Promise<string> {
  let stderr = '';
  let started = false;
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      if (started) return;
      stderr += chunk;
      const match = /"url":"([^"]+)"/.exec(stderr);
      if (!match?.[1]) return;
      started = true;
      resolve(match[1]);
    });
    child.on('exit', (code) => {
      if (!started) reject(new Error(`${name} exited with ${code}: ${stderr}`));
    });
  });
}
