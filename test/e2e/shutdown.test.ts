import { once } from 'node:events';
import { access, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { modernHttpClient, modernStdioClient } from '../helpers/clients.js';
import { MCPD_BIN, serveMcpd } from '../helpers/process.js';
import { modernRequest } from '../helpers/raw.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

const LONG_CALLS = 50;
const LINES = 8 * 131_072; // 8 MiB of "x,y,z,w\n"

interface Probe {
  readonly at: number;
  readonly status: number | 'refused';
}

/** Polls a probe path on fresh connections until the server is gone; returns what it saw, timed. */
async function poll(url: string, path: string, stop: () => boolean): Promise<Probe[]> {
  const seen: Probe[] = [];
  const base = url.replace(/\/mcp$/, '');
  await until(
    async () => {
      if (stop()) return true;
      try {
        const response = await fetch(`${base}${path}`, { headers: { connection: 'close' } });
        await response.arrayBuffer();
        seen.push({ at: Date.now(), status: response.status });
      } catch {
        seen.push({ at: Date.now(), status: 'refused' });
      }
      return false;
    },
    // The pace of the probes, as a load balancer's would be; they go on until the process exits.
    { what: `the server to exit (probing ${path})`, timeoutMs: 120_000, intervalMs: 20 },
  );
  return seen;
}

describe('graceful shutdown of the built binary', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let config: string;

  beforeAll(async () => {
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/long.csv'), 'x,y,z,w\n'.repeat(LINES));
    config = await demo.configWith(
      'shutdown.yaml',
      'limits: { maxConcurrentPerPrincipal: 200, rateLimit: { perSecond: 1000, burst: 1000 } }\n',
    );
  });
  afterAll(async () => demo?.cleanup());

  it(`finishes ${LONG_CALLS} streaming calls in flight on SIGTERM, refuses new ones, and exits 0`, async () => {
    const auditFile = join(demo.dir, 'shutdown-audit.log');
    const serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
    const long = await modernHttpClient(serving.url, 'long-caller');
    const short = await modernHttpClient(serving.url, 'short-caller');
    let exited = false;
    let exitedAt = 0;
    void serving.exited.then(() => {
      exited = true;
      exitedAt = Date.now();
    });
    const ready = poll(serving.url, '/ready', () => exited);
    const health = poll(serving.url, '/health', () => exited);

    const progress = new Array<number>(LONG_CALLS).fill(0);
    let signalledAt = 0;
    const calls = progress.map((_, index) =>
      long.callTool(
        { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 16384 } },
        {
          timeout: 120_000,
          onprogress: () => {
            progress[index] = (progress[index] ?? 0) + 1;
            // Mid-way: every call has started streaming (a call still on its way in would rightly be
            // refused) and none is near its end (512 chunks each).
            if (signalledAt === 0 && progress.every((count) => count >= 2)) {
              signalledAt = Date.now();
              serving.child.kill('SIGTERM');
            }
          },
        },
      ),
    );

    // A stream of short calls until the server stops taking them.
    const shortOutcomes: ('ok' | 'refused')[] = [];
    const shortStream = until(
      async () => {
        if (exited) return true;
        try {
          const result = (await short.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } })) as {
            isError?: boolean;
          };
          shortOutcomes.push(result.isError ? 'refused' : 'ok');
        } catch {
          shortOutcomes.push('refused');
          if (signalledAt > 0) return true;
        }
        return false;
      },
      { what: 'the server to stop taking short calls', timeoutMs: 120_000, intervalMs: 25 },
    );

    const results = (await Promise.all(calls)) as { isError?: boolean; structuredContent?: { lines: number } }[];
    const longCallsDoneAt = Date.now();
    expect(await serving.exited).toBe(0);
    await shortStream;
    const shutdownMs = exitedAt - signalledAt;

    // Every call in flight completed, fully.
    expect(results.filter((r) => !r.isError && r.structuredContent?.lines === LINES)).toHaveLength(LONG_CALLS);
    // Ready until the signal; then the port was shut (a probe's fresh connection refused) while the
    // calls in flight were still running. Liveness never failed while the process answered.
    const readySeen = await ready;
    expect(readySeen.filter((p) => p.at < signalledAt).every((p) => p.status === 200)).toBe(true);
    const shut = readySeen.find((p) => p.status === 'refused');
    expect(shut, 'the listener never closed').toBeDefined();
    expect((shut as Probe).at).toBeGreaterThanOrEqual(signalledAt);
    expect((shut as Probe).at).toBeLessThan(longCallsDoneAt);
    // Once shut, it stays shut: no later probe is answered.
    const later = readySeen.filter((p) => p.at > (shut as Probe).at);
    expect(
      later.every((p) => p.status === 'refused'),
      JSON.stringify(readySeen.filter((p) => p.at >= signalledAt - 50).map((p) => [p.at - signalledAt, p.status])),
    ).toBe(true);
    const healthSeen = await health;
    expect(healthSeen.filter((p) => p.status !== 'refused').every((p) => p.status === 200)).toBe(true);
    expect(healthSeen.some((p) => p.at < signalledAt && p.status === 200)).toBe(true);
    // New calls were refused once the drain began; calls before it were served.
    expect(shortOutcomes).toContain('ok');
    expect(shortOutcomes.at(-1)).toBe('refused');

    // One audit record per call made: the long ones, every short one served, every short one refused.
    const records = await readAudit(auditFile);
    const longRecords = records.filter((r) => r.client === 'long-caller');
    expect(longRecords).toHaveLength(LONG_CALLS);
    expect(longRecords.every((r) => r.outcome === 'ok' && r.bytes === LINES * 8)).toBe(true);
    const shortServed = records.filter((r) => r.client === 'short-caller');
    expect(shortServed.length).toBe(shortOutcomes.filter((o) => o === 'ok').length);
    expect(serving.stderr()).toContain('"msg":"stopped"');
    process.stdout.write(`shutdown under ${LONG_CALLS} streaming calls: ${shutdownMs} ms from SIGTERM to exit\n`);
    await Promise.allSettled([long.close(), short.close()]);
  }, 120_000);

  it('answers a request already on its way when the drain began with 503, not run, and closes its connection', async () => {
    const auditFile = join(demo.dir, 'on-its-way-audit.log');
    const serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
    const { port } = new URL(serving.url);
    const long = await modernHttpClient(serving.url, 'keeps-it-draining');
    let signalled = false;
    let lineSent: Promise<{ status: string; head: string; body: string }> | undefined;
    // Its request line and first header are on the wire before the signal, the rest after it.
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
    const answered = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk;
      });
      socket.on('close', () => resolve(text));
    });
    const result = (await long.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 4096 } },
      {
        timeout: 120_000,
        onprogress: () => {
          if (signalled) return;
          signalled = true;
          serving.child.kill('SIGTERM');
          lineSent = (async () => {
            // The drain has begun once a fresh connection is refused.
            await until(
              async () => {
                const probe = connect(Number(port), '127.0.0.1');
                const refused = await new Promise<boolean>((resolve) => {
                  probe.once('connect', () => resolve(false));
                  probe.once('error', () => resolve(true));
                });
                probe.destroy();
                return refused;
              },
              { what: 'the listener to close', intervalMs: 10 },
            );
            const { headers, body } = modernRequest('tools/call', {
              name: 'write_file',
              arguments: { path: 'workspace/never-written.md', content: 'no\n' },
            });
            const lines = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)) })
              .map(([name, value]) => `${name}: ${value}\r\n`)
              .join('');
            socket.write(`${lines}\r\n${body}`);
            const text = await answered;
            const [head = '', rest = ''] = text.split('\r\n\r\n');
            return { status: head.split('\r\n')[0] ?? '', head: head.toLowerCase(), body: rest };
          })();
        },
      },
    )) as { isError?: boolean; structuredContent?: { lines: number } };
    const refused = await (lineSent as NonNullable<typeof lineSent>);
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent?.lines).toBe(LINES);
    expect(await serving.exited).toBe(0);
    expect(refused.status).toBe('HTTP/1.1 503 Service Unavailable');
    expect(refused.head).toContain('connection: close');
    expect(refused.head).toContain('retry-after: 1');
    expect(refused.body).toContain('server is shutting down; retry on another instance');
    await expect(access(join(demo.project, 'workspace/never-written.md'))).rejects.toThrow();
    const records = await readAudit(auditFile);
    expect(records.filter((r) => r.rule === 'lifecycle:draining')).toHaveLength(1);
    await long.close().catch(() => {});
  }, 60_000);

  it('cancels what outlives the grace period with a clear error, and still exits 0', async () => {
    const auditFile = join(demo.dir, 'grace-audit.log');
    const graceConfig = join(demo.dir, 'grace.yaml');
    await writeFile(
      graceConfig,
      `${(await import('node:fs')).readFileSync(config, 'utf8')}\nshutdown: { gracePeriodMs: 300 }\n`,
    );
    const serving = await serveMcpd(['--config', graceConfig, '--port', '0', '--audit-file', auditFile]);
    const client = await modernHttpClient(serving.url, 'outlived');
    let signalled = false;
    const result = (await client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 1024 } },
      {
        onprogress: () => {
          if (!signalled) {
            signalled = true;
            serving.child.kill('SIGTERM');
          }
        },
      },
    )) as { isError?: boolean; content: { text: string }[] };
    expect(result.isError).toBe(true);
    expect(result.content[0]?.text).toMatch(
      /^UNAVAILABLE: the server is shutting down and stopped this call after its grace period/,
    );
    expect(await serving.exited).toBe(0);
    const [record] = (await readAudit(auditFile)).filter((r) => r.client === 'outlived');
    expect(record).toMatchObject({ outcome: 'cancelled', error: 'UNAVAILABLE' });
    await client.close().catch(() => {});
  }, 60_000);

  it('exits at once with code 1 on a second signal, after flushing the audit', async () => {
    const auditFile = join(demo.dir, 'forced-audit.log');
    const serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
    const client: Client = await modernHttpClient(serving.url, 'forced');
    await client.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } });
    let signalled = false;
    let secondSignal: Promise<void> | undefined;
    // The call itself is abandoned with the process; the client would wait on the dead stream.
    void client
      .callTool(
        { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 1024 } },
        {
          onprogress: () => {
            if (signalled) return;
            signalled = true;
            serving.child.kill('SIGTERM');
            // The second once the first has landed (two signals sent at once may arrive as one).
            secondSignal = until(() => serving.stderr().includes('"msg":"shutting down"'), {
              what: 'the first SIGTERM to start the shutdown',
              describe: () => serving.stderr(),
            }).then(() => {
              serving.child.kill('SIGTERM');
            });
          },
        },
      )
      .catch((error: unknown) => error);
    const started = Date.now();
    expect(await serving.exited).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
    await secondSignal;
    const records = (await readAudit(auditFile)).filter((r) => r.client === 'forced');
    expect(records[0]).toMatchObject({ tool: 'get_file_info', outcome: 'ok' });
    expect(serving.stderr()).toContain('second signal: exiting now');
    await client.close().catch(() => {});
  }, 60_000);

  it('drains stdio too: SIGTERM lets the call in flight finish, then exits 0', async () => {
    const auditFile = join(demo.dir, 'stdio-shutdown.log');
    const client = await modernStdioClient(process.execPath, [
      MCPD_BIN,
      'stdio',
      '--config',
      config,
      '--audit-file',
      auditFile,
    ]);
    const transport = (
      client as unknown as { transport?: { pid?: number | null; stderr?: NodeJS.ReadableStream | null } }
    ).transport;
    const pid = transport?.pid;
    expect(typeof pid).toBe('number');
    let stderr = '';
    transport?.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    let signalled = false;
    let refusedDuringDrain: Promise<unknown> | undefined;
    const result = (await client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 1024 } },
      {
        onprogress: () => {
          if (!signalled) {
            signalled = true;
            process.kill(pid as number, 'SIGTERM');
            // Once the signal has landed (the server says it is shutting down), try to start new work.
            refusedDuringDrain = until(() => stderr.includes('"msg":"shutting down"'), {
              what: 'the SIGTERM to start the shutdown',
              describe: () => stderr,
            }).then(() =>
              client.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } }).then(
                () => 'served',
                (error: unknown) => String(error),
              ),
            );
          }
        },
      },
    )) as { isError?: boolean; structuredContent?: { lines: number } };
    expect(result.isError).toBeFalsy();
    expect(await refusedDuringDrain).toMatch(/shutting down/);
    expect(result.structuredContent?.lines).toBe(LINES);
    // The process goes away by itself once the call is answered, having said it stopped.
    const alive = () => {
      try {
        process.kill(pid as number, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(() => !alive(), { what: `process ${pid} to exit` });
    expect(alive()).toBe(false);
    expect(stderr).toContain('"msg":"stopped"');
    const [record] = (await readAudit(auditFile)).filter((r) => r.tool === 'process_large_dataset');
    expect(record).toMatchObject({ transport: 'stdio', outcome: 'ok' });
    await client.close().catch(() => {});
  }, 60_000);
});
