import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { messagesOf, modernRequest, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until, WaitTimeout } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/** A raw streaming tools/call on its own socket, so the test decides when (and whether) to read. */
async function streamingCall(url: string, client: string): Promise<Socket> {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const { headers, body } = modernRequest(
    'tools/call',
    { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 1024 } },
    { client, meta: { progressToken: 'p' } },
  );
  socket.write(
    [
      'POST /mcp HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      'Connection: close',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n'),
  );
  socket.pause();
  return socket;
}

describe('limits and backpressure', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  /** Process and per-principal limits, a rate limit, and a 300 ms deadline for process_large_dataset. */
  let strict: TestServer;
  /** Slow SSE readers are waited for (a 60 s stall allowance). */
  let patient: TestServer;
  /** Slow SSE readers are cut off after 800 ms. */
  let impatient: TestServer;

  async function serverWith(name: string, limits: string): Promise<TestServer> {
    return startServer(await demo.configWith(`${name}.yaml`, `limits:\n${limits}`));
  }

  beforeAll(async () => {
    demo = await demoCopy();
    // 96 MB: the SSE progress of a whole pass (~22 MB) is well beyond what socket buffers absorb.
    await writeFile(join(demo.project, 'workspace/big.csv'), `${'a,b,c,d,e,f,g,h\n'.repeat(6_000_000)}`);
    strict = await serverWith(
      'strict',
      '  maxConcurrentPerPrincipal: 3\n  rateLimit: { perSecond: 5, burst: 40 }\n  toolTimeouts: { process_large_dataset: 300 }\n  maxSubscriptionStreams: 2\n',
    );
    patient = await serverWith('patient', '  sseStallTimeoutMs: 60000\n');
    impatient = await serverWith('impatient', '  sseStallTimeoutMs: 800\n  maxConcurrentPerPrincipal: 3\n');
  });
  afterAll(async () => {
    for (const server of [strict, patient, impatient]) await server?.close();
    await demo?.cleanup();
  });

  it('stops a tool at its time limit through the signal, and says so', async () => {
    const client = await modernHttpClient(strict.url, 'timeout-client');
    const result = (await client.callTool({
      name: 'process_large_dataset',
      arguments: { path: 'workspace/big.csv', chunkSize: 1024 },
    })) as { isError?: boolean; content: { text: string }[] };
    expect(result.isError).toBe(true);
    expect(result.content[0]?.text).toBe(
      'TIMEOUT: process_large_dataset ran longer than its 300 ms limit and was stopped',
    );
    const [record] = await waitForAudit(strict.auditFile, (r) => r.client === 'timeout-client');
    expect(record).toMatchObject({ outcome: 'error', error: 'TIMEOUT', decision: 'allow' });
    await client.close();
  });

  it('answers 429 with Retry-After past the per-principal concurrency limit', async () => {
    const stop = new AbortController();
    const long = () =>
      postModern(
        impatient.url,
        'tools/call',
        { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 1024 } },
        { signal: stop.signal },
      );
    // Three long calls hold the principal's three slots (the server counts them in flight); the
    // next ones are turned away at once.
    const running = Array.from({ length: 3 }, long);
    let metrics = '';
    await until(
      async () => {
        metrics = await (await fetch(`${impatient.base}/metrics`)).text();
        return Number(/^mcpd_requests_in_flight (\d+)$/m.exec(metrics)?.[1]) >= 3;
      },
      {
        what: 'three calls in flight',
        describe: () => metrics.split('\n').find((line) => line.startsWith('mcpd_requests_in_flight')) ?? metrics,
      },
    );
    const refused = await Promise.all(Array.from({ length: 2 }, long));
    expect(refused.map((a) => a.status)).toEqual([429, 429]);
    expect(Number(refused[0]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await (refused[0] as Response).json()).toMatchObject({
      error: { message: 'too many requests in progress; retry later' },
    });
    stop.abort();
    await Promise.allSettled(running);
  }, 60_000);

  it('frees the slot of a request whose body, sent without a length, turned out too large', async () => {
    // The body limit is found only while reading (chunked: no Content-Length to refuse up front),
    // after the request took a concurrency slot; three such refusals must not use up the principal's two.
    const small = await startServer(
      await demo.configWith('small-body.yaml', 'limits:\n  maxConcurrentPerPrincipal: 2\n'),
      {
        maxBodyBytes: 1024,
      },
    );
    try {
      const { headers, body } = modernRequest('tools/list', {}, { meta: { padding: 'x'.repeat(4000) } });
      const chunked = (): Promise<number> =>
        new Promise((resolve, reject) => {
          const req = httpRequest(small.url, { method: 'POST', headers }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.write(body.slice(0, 100));
          req.end(body.slice(100));
        });
      const refused = [await chunked(), await chunked(), await chunked()];
      expect(refused).toEqual([413, 413, 413]);
      expect((await postModern(small.url, 'tools/list')).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('caps open subscription streams (they do not count against the request limits)', async () => {
    const stop = new AbortController();
    const listen = () =>
      postModern(
        strict.url,
        'subscriptions/listen',
        { notifications: { resourcesListChanged: true } },
        { signal: stop.signal },
      );
    const open = [await listen(), await listen()];
    expect(open.map((a) => a.status)).toEqual([200, 200]);
    const third = await listen();
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('5');
    // Requests still flow while the streams stay open.
    expect((await postModern(strict.url, 'tools/list')).status).toBe(200);
    stop.abort();
    await Promise.allSettled(open.map((a) => a.body?.cancel()));
  });

  it('answers 429 with Retry-After once the rate limit bucket is empty, and recovers', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    // Back to back until the bucket (40 tokens, refilled at 5 a second) runs dry, however long the
    // machine takes per request, rather than a fixed number that a slow machine may not get through
    // faster than the bucket refills.
    await until(
      async () => {
        const answer = await postModern(strict.url, 'tools/list');
        statuses.push(answer.status);
        if (answer.status === 429) retryAfter ??= answer.headers.get('retry-after');
        await answer.body?.cancel();
        return answer.status === 429;
      },
      { what: 'the rate limit to refuse a request', timeoutMs: 20_000, intervalMs: 0 },
    ).catch((error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error;
    });
    expect(statuses).toContain(429);
    expect(statuses.indexOf(429)).toBeGreaterThan(10);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // The bucket refills at 5 tokens a second: a request passes again within the Retry-After
    // the server gave, and again the moment one token is back.
    let status = 0;
    await until(
      async () => {
        const answer = await postModern(strict.url, 'tools/list');
        await answer.body?.cancel();
        status = answer.status;
        return status === 200;
      },
      {
        what: 'a request to pass the rate limit again',
        timeoutMs: Number(retryAfter) * 1000 + 1000,
        intervalMs: 50,
        describe: () => `status ${status}`,
      },
    );
    expect(status).toBe(200);
  });

  it('makes a streaming tool wait for a reader that stopped reading, without buffering for it', async () => {
    const socket = await streamingCall(patient.url, 'paused-reader');
    // The kernel's socket buffers take a few MB first; then only backpressure can hold the producer.
    // Memory must level off while the call is still far from done.
    let previous: number | undefined;
    let steadyFor = 0;
    await until(
      () => {
        const now = process.memoryUsage().rss;
        if (previous !== undefined) steadyFor = now - previous < 2 * 1024 * 1024 ? steadyFor + 1 : 0;
        previous = now;
        return steadyFor >= 3;
      },
      // Time is the subject here: "level" means under 2 MB of growth in each of three 500 ms samples.
      { what: 'memory to level off while the reader is paused', timeoutMs: 15_000, intervalMs: 500 },
    ).catch((error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error;
    });
    expect(steadyFor, 'memory kept growing while the reader was paused').toBe(3);
    expect((await readAudit(patient.auditFile)).filter((r) => r.client === 'paused-reader')).toEqual([]);
    // Giving up on the reader cancels the paused work.
    socket.destroy();
    const [record] = await waitForAudit(patient.auditFile, (r) => r.client === 'paused-reader');
    expect(record).toMatchObject({ outcome: 'cancelled', decision: 'allow' });
  }, 60_000);

  it('cuts off an SSE reader that stays stalled, which cancels its work', async () => {
    const socket = await streamingCall(impatient.url, 'stalled-reader');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const [record] = await waitForAudit(impatient.auditFile, (r) => r.client === 'stalled-reader', 1, 20_000);
    expect(record).toMatchObject({ outcome: 'cancelled', decision: 'allow' });
    socket.destroy();
    await closed;
  }, 30_000);

  it('keeps answering quick calls', async () => {
    const answer = await postModern(patient.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(answer.status).toBe(200);
    const [message] = await messagesOf(answer);
    expect(message?.result).toBeDefined();
  });
});
