import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messagesOf, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

describe('request logs', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config, { logLevel: 'info' }, logs);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  it('writes one JSON line per request with its id, method, tool, status and duration, and no credentials', async () => {
    const before = logs.length;
    const read = await postModern(
      server.url,
      'tools/call',
      { name: 'read_file', arguments: { path: 'README.md' } },
      { headers: { 'x-request-id': 'req-abc.1', authorization: 'Bearer s3cr3t-t0ken' } },
    );
    await messagesOf(read);
    const denied = await postModern(server.url, 'tools/call', { name: 'read_file', arguments: { path: '.env' } });
    await messagesOf(denied);
    const list = await postModern(server.url, 'tools/list');
    await messagesOf(list);
    // The line is written when the response closes, which may follow the client's last read.
    await until(() => logs.slice(before).filter((line) => line.msg === 'request').length >= 3, {
      what: 'three request log lines',
      timeoutMs: 5000,
      describe: () => JSON.stringify(logs.slice(before)),
    });

    const lines = logs.slice(before);
    const requests = lines.filter((line) => line.msg === 'request');
    expect(requests).toHaveLength(3);
    expect(requests[0]).toMatchObject({
      level: 'info',
      // A client's own X-Request-Id is not believed (no trusted proxy here): the edge's own is logged.
      requestId: read.headers.get('x-request-id'),
      method: 'tools/call',
      tool: 'read_file',
      status: 200,
      principal: 'anonymous',
      client: 'raw-test',
      clientVersion: '1.0.0',
    });
    expect(typeof requests[0]?.durationMs).toBe('number');
    expect(requests[1]).toMatchObject({ method: 'tools/call', tool: 'read_file', errorType: 'tool_error' });
    expect(requests[1]?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(requests[2]).toMatchObject({ method: 'tools/list', tool: null, status: 200 });
    // Nothing else at info for these requests, and no credential anywhere.
    expect(lines.filter((line) => line.msg !== 'request' && line.level === 'info')).toEqual([]);
    expect(JSON.stringify(lines)).not.toContain('s3cr3t-t0ken');
  });

  it('labels a GET of /mcp (405: no standalone stream) as GET, and names the client by User-Agent', async () => {
    const before = logs.length;
    const answer = await fetch(server.url, { headers: { accept: 'text/event-stream', 'user-agent': 'probe/1.0' } });
    expect(answer.status).toBe(405);
    await answer.body?.cancel();
    await until(() => logs.slice(before).some((line) => line.msg === 'request'), {
      what: 'a request log line',
      timeoutMs: 5000,
      describe: () => JSON.stringify(logs.slice(before)),
    });
    expect(logs.slice(before).find((line) => line.msg === 'request')).toMatchObject({
      method: 'GET',
      status: 405,
      client: 'probe/1.0',
    });
  });
});
