import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modernHttpClient } from '../helpers/clients.js';
import { messagesOf, postModern, rawRequest } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

/** A raw HTTP request with exactly the headers given (fetch would set Host and Origin itself). */
const LIST_TOOLS = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });

describe('HTTP edge', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;

  beforeAll(async () => {
    demo = await demoCopy();
    const yaml = await readFile(demo.config, 'utf8');
    await writeFile(
      demo.config,
      yaml.replace('  port: 8000', '  port: 8000\n  sseKeepAliveMs: 100\n  maxBodyBytes: 65536'),
    );
    server = await startServer(demo.config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  it('answers /health and /ready, and 404 elsewhere', async () => {
    const health = await fetch(`${server.base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect((await fetch(`${server.base}/nope`)).status).toBe(404);
  });

  it('refuses a foreign Host header with 403 (DNS rebinding)', async () => {
    const res = await rawRequest(server.url, {
      headers: {
        host: 'evil.example:80',
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: LIST_TOOLS,
    });
    expect(res.status).toBe(403);
  });

  it('refuses a foreign Origin with 403 and accepts a loopback one', async () => {
    const fromOrigin = (origin: string) =>
      rawRequest(server.url, {
        headers: {
          host: new URL(server.url).host,
          origin,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
        },
        body: LIST_TOOLS,
      });
    expect((await fromOrigin('https://evil.example')).status).toBe(403);
    expect((await fromOrigin('http://localhost:5173')).status).toBe(200);
  });

  it('refuses a body over the limit with 413, by header and by bytes', async () => {
    const declared = await rawRequest(server.url, {
      headers: { host: new URL(server.url).host, 'content-type': 'application/json', 'content-length': '10000000' },
      body: '',
    });
    expect(declared.status).toBe(413);
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'write_file', arguments: { path: 'workspace/x.md', content: 'x'.repeat(100_000) } },
    });
    const streamed = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('answers malformed JSON with a JSON-RPC parse error and keeps serving', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc": "2.0", "id": 1, "method": ',
    });
    expect(res.status).toBe(400);
    const [message] = await messagesOf(res);
    expect(message?.error).toMatchObject({ code: -32700 });
    const client = await modernHttpClient(server.url);
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
    await client.close();
  });

  it('refuses a non-JSON content type with 415', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', accept: 'application/json, text/event-stream' },
      body: LIST_TOOLS,
    });
    expect(res.status).toBe(415);
  });

  it('checks Mcp-Method and Mcp-Name against the body', async () => {
    const wrongMethod = await postModern(server.url, 'tools/list', {}, { headers: { 'mcp-method': 'tools/call' } });
    expect(wrongMethod.status).toBe(400);
    const [m1] = await messagesOf(wrongMethod);
    expect(m1?.error).toMatchObject({ code: -32020 });
    const wrongName = await postModern(
      server.url,
      'tools/call',
      { name: 'list_roots', arguments: {} },
      { headers: { 'mcp-name': 'read_file' } },
    );
    expect(wrongName.status).toBe(400);
    const missing = await postModern(server.url, 'tools/list', {}, { headers: { 'mcp-method': '' } });
    expect(missing.status).toBe(400);
    const ok = await postModern(server.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(ok.status).toBe(200);
  });

  it('believes an X-Request-Id only from a trusted proxy, and only when well-formed', async () => {
    // From an ordinary client the id is never taken: it would choose what its audit lines are filed under.
    const untrusted = await postModern(server.url, 'tools/list', {}, { headers: { 'x-request-id': 'trace-abc_123' } });
    expect(untrusted.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const proxiedConfig = join(demo.dir, 'proxied.yaml');
    const yaml = await readFile(demo.config, 'utf8');
    await writeFile(proxiedConfig, yaml.replace('  port: 8000', '  port: 8000\n  trustedProxies: ["127.0.0.1"]'));
    const proxied = await startServer(proxiedConfig);
    try {
      const kept = await postModern(proxied.url, 'tools/list', {}, { headers: { 'x-request-id': 'trace-abc_123' } });
      expect(kept.headers.get('x-request-id')).toBe('trace-abc_123');
      const replaced = await postModern(
        proxied.url,
        'tools/list',
        {},
        { headers: { 'x-request-id': 'bad id\twith spaces' } },
      );
      expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await proxied.close();
    }
  });

  it.each(['2025-11-25', '2025-06-18', '2025-03-26'])(
    'serves a %s client statelessly on the same endpoint',
    async (version) => {
      const post = (body: unknown, extra: Record<string, string> = {}) =>
        fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...extra },
          body: JSON.stringify(body),
        });
      const init = await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: version, capabilities: {}, clientInfo: { name: `raw-${version}`, version: '1' } },
      });
      expect(init.status).toBe(200);
      expect(init.headers.get('mcp-session-id')).toBeNull();
      const [hello] = await messagesOf(init);
      expect(hello?.result).toMatchObject({ protocolVersion: version, serverInfo: { name: 'mcpd' } });
      const call = await post(
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'list_roots', arguments: {} } },
        { 'mcp-protocol-version': version },
      );
      const [answer] = await messagesOf(call);
      expect(answer?.result).toMatchObject({ structuredContent: { roots: expect.any(Array) } });
    },
  );

  it('answers legacy GET and DELETE with 405 (stateless: no sessions)', async () => {
    const get = await fetch(server.url, {
      headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25' },
    });
    expect(get.status).toBe(405);
    const del = await fetch(server.url, { method: 'DELETE', headers: { 'mcp-protocol-version': '2025-11-25' } });
    expect(del.status).toBe(405);
  });

  it('streams progress over SSE with X-Accel-Buffering: no', async () => {
    const args = { path: 'data/sales.csv', chunkSize: 16384 };
    const res = await postModern(
      server.url,
      'tools/call',
      { name: 'process_large_dataset', arguments: args },
      { id: 7, meta: { progressToken: 'p1' } },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const messages = await messagesOf(res);
    const progress = messages.filter((m) => m.method === 'notifications/progress');
    expect(progress.length).toBeGreaterThanOrEqual(10);
    expect(progress[0]?.params).toMatchObject({ message: expect.stringMatching(/^Processed: /) });
    expect(messages.find((m) => m.id === 7)?.result).toMatchObject({ structuredContent: { records: 5000 } });
  });

  it('sends keep-alive comments on an idle subscription stream', async () => {
    const res = await postModern(
      server.url,
      'subscriptions/listen',
      { notifications: { resourcesListChanged: true } },
      { id: 'listen-1' },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = '';
    const deadline = Date.now() + 5000;
    while (!seen.includes(': keepalive') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    await reader.cancel();
    expect(seen).toContain('notifications/subscriptions/acknowledged');
    expect(seen).toContain(': keepalive');
  });
});
