/**
 * mcpd over HTTP for the filesystem benchmark's big-read row: `mcpd serve` on a free loopback port,
 * one 2026-07-28 tools/call per POST, timed from sending the request to the last byte of the
 * answer (parsing it is the client's cost, done after the clock stops).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { listeningUrl } from '../listening.js';
import { modernToolCall } from '../toolCalls.js';

export class HttpMcpd {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  /** Starts `node <args> --port 0` and waits for the line that says where it listens. */
  static async start(args: readonly string[]): Promise<HttpMcpd> {
    const child = spawn(process.execPath, [...args, '--port', '0', '--log-level', 'info'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new HttpMcpd(child, await listeningUrl(child, 'mcpd serve'));
  }

  async call(tool: string, args: Record<string, unknown>): Promise<{ ms: number; body: string }> {
    const started = performance.now();
    const { headers, body } = modernToolCall(tool, args);
    const response = await fetch(this.url, { method: 'POST', headers, body });
    const bytes = await response.arrayBuffer();
    const ms = performance.now() - started;
    if (response.status !== 200) throw new Error(`${tool} over HTTP answered ${response.status}`);
    return { ms, body: Buffer.from(bytes).toString('utf8') };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.kill('SIGTERM');
    });
  }
}
