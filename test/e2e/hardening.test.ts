import { createHash } from 'node:crypto';
import { link, mkdir, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { errorCode, modernHttpClient } from '../helpers/clients.js';
import { runCommand } from '../helpers/process.js';
import { messagesOf, postLegacy, postModern, rawRequest } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/** Regression tests for what an attacker found (issue 9), each against the running server. */

type Result = { isError?: boolean; content: { text?: string }[]; _meta?: Record<string, unknown> };
const codeOf = errorCode;

describe('H2: a hostile glob cannot freeze the event loop', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;
  // The pattern that kept /health silent for 31.8 s and the call running 150 s past its deadline.
  const bomb = `${'{*,*,*,*,*,*,*,*}'.repeat(6)}X`;

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config);
    client = await modernHttpClient(server.url, 'glob-attacker');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it.each([
    ['search_files', { pattern: bomb }],
    ['grep', { pattern: 'MCP', include: bomb }],
  ])('%s refuses the brace bomb as an invalid argument, and /health answers meanwhile', async (tool, args) => {
    const health = (async () => {
      const started = performance.now();
      const answer = await fetch(`${server.base}/health`);
      return { status: answer.status, ms: performance.now() - started };
    })();
    const result = (await client.callTool({ name: tool, arguments: args })) as Result;
    expect(result.isError).toBe(true);
    expect(codeOf(result)).toBe('INVALID_ARGUMENT');
    expect(result.content[0]?.text).toMatch(/alternatives/);
    expect((await health).status).toBe(200);
  });

  it('runs star-heavy patterns that stay under the bounds without stalling', async () => {
    const result = (await client.callTool({
      name: 'search_files',
      arguments: { pattern: `${'*a'.repeat(60)}*X` },
    })) as Result & { structuredContent?: { matches: unknown[] } };
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent?.matches).toEqual([]);
  });
});

const slowCall = (id: number) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 1024 } },
});

describe('H3: limits count JSON-RPC calls, decided from the body', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;

  beforeAll(async () => {
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/big.csv'), 'a,b,c,d\n'.repeat(2_000_000));
    server = await startServer(
      await demo.configWith(
        'h3.yaml',
        'limits:\n  maxConcurrentPerPrincipal: 3\n  rateLimit: { perSecond: 1, burst: 40 }\n',
      ),
    );
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  it('a tools/call dressed as subscriptions/listen in its header still takes a concurrency slot', async () => {
    const stop = new AbortController();
    const disguised = { 'mcp-method': 'subscriptions/listen' };
    const running = [1, 2, 3].map((id) => postLegacy(server.url, slowCall(id), disguised, stop.signal));
    // The first three are in progress (their streams are open); the fourth finds no slot.
    const opened = await Promise.all(running);
    expect(opened.map((answer) => answer.status)).toEqual([200, 200, 200]);
    const fourth = await postLegacy(server.url, slowCall(4), disguised);
    expect(fourth.status).toBe(429);
    stop.abort();
    await Promise.allSettled(opened.map((answer) => answer.body?.cancel()));
    const refusals = await waitForAudit(server.auditFile, (r) => r.rule === 'limit:concurrency');
    expect(refusals[0]).toMatchObject({ op: 'limit', decision: 'deny', requested: 'tools/call process_large_dataset' });
  });

  it('a batch takes one rate token and one slot per call, all or none, and each refused call is audited', async () => {
    const batch = [10, 11, 12, 13, 14].map((id) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'list_roots', arguments: {} },
    }));
    // Five calls against three slots: refused whole, before any of them ran.
    const answer = await postLegacy(server.url, batch);
    expect(answer.status).toBe(429);
    const refused = await waitForAudit(
      server.auditFile,
      (r) => r.rule === 'limit:concurrency' && r.requested === 'tools/call list_roots',
      5,
    );
    expect(refused).toHaveLength(5);
    expect((await readAudit(server.auditFile)).filter((r) => r.tool === 'list_roots')).toEqual([]);
  });

  it('a batch larger than the rate burst is refused whole, one audit line per call', async () => {
    const rated = await startServer(
      await demo.configWith('h3-rate.yaml', 'limits:\n  rateLimit: { perSecond: 1, burst: 4 }\n'),
    );
    try {
      const batch = [1, 2, 3, 4, 5].map((id) => ({ jsonrpc: '2.0', id, method: 'ping' }));
      const answer = await postLegacy(rated.url, batch);
      expect(answer.status).toBe(429);
      expect(await waitForAudit(rated.auditFile, (r) => r.rule === 'limit:rate', 5)).toHaveLength(5);
      // Four single calls fit the same burst.
      const singles = [];
      for (const id of [6, 7, 8, 9])
        singles.push((await postLegacy(rated.url, { jsonrpc: '2.0', id, method: 'ping' })).status);
      expect(singles).toEqual([200, 200, 200, 200]);
    } finally {
      await rated.close();
    }
  });
});

describe('H4, M4 and hard links: what a root holds cannot stall, flood or unmask', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;

  beforeAll(async () => {
    demo = await demoCopy();
    await mkdir(join(demo.project, 'workspace/crowded'));
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) => writeFile(join(demo.project, `workspace/crowded/n-${i}.md`), '')),
    );
    await runCommand('mkfifo', [join(demo.project, 'workspace/pipe.md')]);
    await link(join(demo.project, '.env'), join(demo.project, 'workspace/innocent.md'));
    server = await startServer(await demo.configWith('h4.yaml', 'limits:\n  maxDirectoryEntries: 2000\n'));
    client = await modernHttpClient(server.url, 'h4-attacker');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it('refuses to list a directory above maxDirectoryEntries, and walks skip it and say so', async () => {
    const listing = (await client.callTool({
      name: 'list_directory',
      arguments: { path: 'workspace/crowded' },
    })) as Result;
    expect(codeOf(listing)).toBe('TOO_LARGE');
    expect(listing.content[0]?.text).toMatch(/more than 2000 entries/);
    const search = (await client.callTool({ name: 'search_files', arguments: { pattern: 'n-1.md' } })) as Result & {
      structuredContent?: { truncated: boolean; matches: unknown[] };
    };
    expect(search.isError).toBeFalsy();
    expect(search.structuredContent).toMatchObject({ truncated: true, matches: [] });
  });

  it('answers a FIFO as missing at once, four times over, and stays ready (M4)', async () => {
    const reads = await Promise.all(
      [1, 2, 3, 4].map(() => client.callTool({ name: 'read_file', arguments: { path: 'workspace/pipe.md' } })),
    );
    for (const read of reads) expect(codeOf(read as Result)).toBe('NOT_FOUND_OR_DENIED');
    expect((await fetch(`${server.base}/ready`)).status).toBe(200);
    const info = (await client.callTool({
      name: 'get_file_info',
      arguments: { path: 'workspace/pipe.md' },
    })) as Result & {
      structuredContent?: { type: string };
    };
    expect(info.structuredContent?.type).toBe('other');
  });

  it('refuses a hard link to an excluded file, under a readable name', async () => {
    const read = (await client.callTool({ name: 'read_file', arguments: { path: 'workspace/innocent.md' } })) as Result;
    expect(codeOf(read)).toBe('NOT_FOUND_OR_DENIED');
    expect(JSON.stringify(read)).not.toContain('demo-token-never-served');
    const grep = (await client.callTool({ name: 'grep', arguments: { pattern: '=', path: 'workspace' } })) as Result;
    expect(JSON.stringify(grep)).not.toMatch(/innocent|demo-token-never-served|DATABASE_URL/);
  });

  it('tells nothing of a second name: no info, and no size or time in a listing (found by the fuzzer)', async () => {
    const secretSize = (await stat(join(demo.project, '.env'))).size;
    const info = (await client.callTool({
      name: 'get_file_info',
      arguments: { path: 'workspace/innocent.md' },
    })) as Result;
    expect(codeOf(info)).toBe('NOT_FOUND_OR_DENIED');
    const listing = (await client.callTool({
      name: 'list_directory',
      arguments: { path: 'workspace', details: true },
    })) as Result & { structuredContent?: { entries: { name: string; size?: number; modified?: string }[] } };
    const entry = listing.structuredContent?.entries.find((e) => e.name === 'innocent.md');
    expect(entry, JSON.stringify(listing.structuredContent)).toBeDefined();
    expect(secretSize).toBeGreaterThan(0);
    expect(entry?.size).toBe(0);
    expect(entry?.modified).toBe(new Date(0).toISOString());
  });
});

/** Reads JSON-RPC messages off an SSE response as they come. */
function sseReader(response: Response) {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const messages: { method?: string; params?: Record<string, unknown> }[] = [];
  const pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const data = buffer
          .slice(0, end)
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice(6))
          .join('');
        if (data) messages.push(JSON.parse(data));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  })();
  return {
    messages,
    async until(predicate: (m: (typeof messages)[number]) => boolean, timeoutMs = 10_000) {
      await until(() => messages.some(predicate), {
        what: 'such a message',
        timeoutMs,
        describe: () => JSON.stringify(messages),
      });
    },
    async close() {
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
}

describe('M3: a listen stream hears only what its grants allow, is audited, and is capped per principal', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  const sha = (key: string) => createHash('sha256').update(key).digest('hex');

  beforeAll(async () => {
    demo = await demoCopy();
    const config = await demo.configWith(
      'm3.yaml',
      [
        'auth:',
        '  mode: apiKeys',
        '  apiKeys:',
        `    - { principal: alice, sha256: ${sha('alice-key')} }`,
        `    - { principal: bob, sha256: ${sha('bob-key')} }`,
        'grants:',
        '  - { principals: [alice], roots: [MCP Demo Project], access: [read] }',
        '  - { principals: [bob], roots: [Shared Templates], access: [read] }',
        'limits:',
        '  maxSubscriptionStreamsPerPrincipal: 2',
        '',
      ].join('\n'),
    );
    server = await startServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  const listen = (key: string, filter: Record<string, unknown>, signal?: AbortSignal) =>
    postModern(
      server.url,
      'subscriptions/listen',
      { notifications: filter },
      {
        headers: { authorization: `Bearer ${key}` },
        ...(signal ? { signal } : {}),
      },
    );

  it("filters by the listener's grants, and audits each subscription", async () => {
    const readme = `file://${demo.project}/README.md`;
    const alice = sseReader(await listen('alice-key', { resourcesListChanged: true, resourceSubscriptions: [readme] }));
    const bob = sseReader(await listen('bob-key', { resourcesListChanged: true, resourceSubscriptions: [readme] }));
    await alice.until((m) => m.method === 'notifications/subscriptions/acknowledged');
    await bob.until((m) => m.method === 'notifications/subscriptions/acknowledged');
    await server.app.changes.whenWatching();

    await writeFile(join(demo.project, 'README.md'), '# changed\n');
    await writeFile(join(demo.project, 'workspace/new-in-project.md'), 'x');
    await alice.until((m) => m.method === 'notifications/resources/updated');
    await alice.until((m) => m.method === 'notifications/resources/list_changed');
    // Then a change bob may hear of: anything of the project would have reached him before it.
    await writeFile(join(demo.templates, 'new-template.md'), 'x');
    await bob.until((m) => m.method === 'notifications/resources/list_changed');
    const heard = (reader: typeof alice) =>
      reader.messages.map((m) => m.method).filter((m) => m !== 'notifications/subscriptions/acknowledged');
    expect(heard(bob)).toEqual(['notifications/resources/list_changed']);
    expect(alice.messages.find((m) => m.method === 'notifications/resources/updated')?.params?.uri).toBe(readme);
    await alice.close();
    await bob.close();

    const records = await waitForAudit(server.auditFile, (r) => r.op === 'subscribe', 2);
    expect(records.map((r) => [r.principal, r.method, r.reason])).toEqual(
      expect.arrayContaining([
        ['alice', 'subscriptions/listen', 'hears of changes in "MCP Demo Project"'],
        ['bob', 'subscriptions/listen', 'hears of changes in "Shared Templates"'],
      ]),
    );
  });

  it('caps streams per principal, so one caller cannot lock the others out', async () => {
    const stop = new AbortController();
    const open = [
      await listen('alice-key', { resourcesListChanged: true }, stop.signal),
      await listen('alice-key', { resourcesListChanged: true }, stop.signal),
    ];
    expect(open.map((answer) => answer.status)).toEqual([200, 200]);
    const third = await listen('alice-key', { resourcesListChanged: true });
    expect(third.status).toBe(429);
    const others = await listen('bob-key', { resourcesListChanged: true }, stop.signal);
    expect(others.status).toBe(200);
    stop.abort();
    await Promise.allSettled([...open, others].map((answer) => answer.body?.cancel()));
  });
});

describe('M2: a move cannot make what was unreadable readable', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;

  beforeAll(async () => {
    demo = await demoCopy();
    await mkdir(join(demo.project, 'dropbox/inner'), { recursive: true });
    await mkdir(join(demo.project, 'public'));
    await writeFile(join(demo.project, 'dropbox/inner/secret.txt'), 'dropped secret');
    await writeFile(join(demo.project, 'dropbox/loose.txt'), 'another secret');
    const config = join(demo.dir, 'm2.yaml');
    await writeFile(
      config,
      [
        'accessPolicy:',
        '  read: ["public/**"]',
        '  write: ["**/*"]',
        'roots:',
        '  - { name: Project, uri: ./workspace/mcp-demo }',
        '',
      ].join('\n'),
    );
    server = await startServer(config);
    client = await modernHttpClient(server.url, 'mover');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it('refuses to move a write-only file into a readable place: the source must be readable', async () => {
    const moved = (await client.callTool({
      name: 'move_file',
      arguments: { source: 'dropbox/loose.txt', destination: 'public/loose.txt' },
    })) as Result;
    expect(codeOf(moved)).toBe('NOT_FOUND_OR_DENIED');
    const records = await waitForAudit(server.auditFile, (r) => r.tool === 'move_file', 3);
    expect(records.map((r) => [r.op, r.decision])).toEqual([
      ['read', 'deny'],
      ['write', 'allow'],
      ['write', 'allow'],
    ]);
  });

  it('refuses a directory moved into its own subtree as a bad argument (found by the fuzzer)', async () => {
    const moved = (await client.callTool({
      name: 'move_file',
      arguments: { source: 'public', destination: 'public/again' },
    })) as Result;
    expect(codeOf(moved)).toBe('INVALID_ARGUMENT');
    expect(moved.content[0]?.text).toMatch(/into itself/);
  });

  it('audits a search of a root the caller cannot name, like a read of it (found by the fuzzer)', async () => {
    for (const tool of ['search_files', 'grep']) {
      const searched = (await client.callTool({ name: tool, arguments: { pattern: 'x', root: 'Nowhere' } })) as Result;
      expect(codeOf(searched)).toBe('INVALID_ARGUMENT');
      const [record] = await waitForAudit(server.auditFile, (r) => r.tool === tool);
      expect(record).toMatchObject({ decision: 'deny', rule: 'unknown-root', op: 'list' });
    }
  });

  it('refuses to carry a directory whose entries the move may not carry, and audits the entry', async () => {
    const moved = (await client.callTool({
      name: 'move_file',
      arguments: { source: 'dropbox', destination: 'public/dropbox' },
    })) as Result;
    expect(codeOf(moved)).toBe('WRITE_DENIED');
    const [carried] = await waitForAudit(server.auditFile, (r) => r.requested.includes('carried by the move'));
    expect(carried).toMatchObject({ decision: 'deny', rule: 'default-deny:read', op: 'read' });
    const read = (await client.callTool({
      name: 'read_file',
      arguments: { path: 'public/dropbox/inner/secret.txt' },
    })) as Result;
    expect(codeOf(read)).toBe('NOT_FOUND_OR_DENIED');
    expect(JSON.stringify(read)).not.toContain('dropped secret');
  });
});

describe('the low findings', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let open: TestServer;
  let keyed: TestServer;
  const logs: Record<string, unknown>[] = [];
  const sha = (key: string) => createHash('sha256').update(key).digest('hex');

  beforeAll(async () => {
    demo = await demoCopy();
    open = await startServer(
      await demo.configWith('low-open.yaml', 'limits:\n  maxBatchFiles: 3\n'),
      { logLevel: 'debug' },
      logs,
    );
    keyed = await startServer(
      await demo.configWith(
        'low-keyed.yaml',
        [
          'auth:',
          '  mode: apiKeys',
          '  apiKeys:',
          `    - { principal: alice, sha256: ${sha('alice-key')} }`,
          'grants:',
          '  - { principals: [alice], roots: [MCP Demo Project], access: [read] }',
          'limits:',
          '  authFailures: { perSecond: 0.5, burst: 5 }',
          '',
        ].join('\n'),
      ),
    );
  });
  afterAll(async () => {
    await open?.close();
    await keyed?.close();
    await demo?.cleanup();
  });

  it('logs a client that hangs up mid-request at debug, not as an error', async () => {
    const { port } = new URL(open.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const before = logs.length;
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk;
    });
    socket.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n{"jsonrpc"`,
    );
    // The headers are in, and the request is being served, when the server asks for the body.
    await until(() => received.startsWith('HTTP/1.1 100 Continue'), {
      what: 'the server to take the request (100 Continue)',
      describe: () => JSON.stringify(received),
    });
    socket.destroy();
    await until(() => logs.slice(before).some((line) => line.msg === 'client disconnected mid-request'), {
      what: 'the disconnect log line',
      timeoutMs: 5000,
      describe: () => JSON.stringify(logs.slice(before)),
    });
    expect(logs.slice(before).filter((line) => (line.level as number) >= 50)).toEqual([]);
  });

  it.each(['access_token', 'Access-Token', 'API_KEY', 'apiKey', 'Authorization', 'jwt'])(
    'refuses a credential in the query string under the name %s',
    async (name) => {
      const answer = await postModern(`${open.url}?${name}=s3cret`, 'tools/list');
      expect(answer.status).toBe(400);
    },
  );

  it('guards /metrics like /mcp: a foreign Host is refused, failed credentials are audited and counted', async () => {
    const foreign = await rawRequest(`${keyed.base}/metrics`, { method: 'GET', headers: { host: 'evil.example' } });
    expect(foreign.status).toBe(403);
    const wrong = await fetch(`${keyed.base}/metrics`, { headers: { authorization: 'Bearer wrong' } });
    expect(wrong.status).toBe(401);
    const [record] = await waitForAudit(keyed.auditFile, (r) => r.requested === '/metrics');
    expect(record).toMatchObject({ op: 'authenticate', decision: 'deny', rule: 'auth:unknown-key' });
    const ok = await fetch(`${keyed.base}/metrics`, { headers: { authorization: 'Bearer alice-key' } });
    expect(await ok.text()).toMatch(/mcpd_auth_failures_total\{reason="auth:unknown-key"\} [1-9]/);
  });

  it('shows a principal only the roots it may read, and answers a hidden root as an unknown one', async () => {
    const key = { authorization: 'Bearer alice-key' };
    const [templates] = await messagesOf(await postModern(keyed.url, 'resources/templates/list', {}, { headers: key }));
    const names = (templates?.result as { resourceTemplates: { name: string }[] } | undefined)?.resourceTemplates.map(
      (t) => t.name,
    );
    expect(names).toEqual(['MCP Demo Project']);
    const read = async (args: Record<string, unknown>) => {
      const [answer] = await messagesOf(
        await postModern(keyed.url, 'tools/call', { name: 'read_file', arguments: args }, { headers: key }),
      );
      return (answer?.result as { content: { text: string }[] } | undefined)?.content[0]?.text;
    };
    const hidden = await read({ path: 'README.md', root: 'Shared Templates' });
    const unknown = await read({ path: 'README.md', root: 'No Such Root' });
    expect(hidden).toBe(unknown);
    const hiddenByPath = await read({ path: `${demo.templates}/README.md` });
    const outside = await read({ path: '/etc/hostname' });
    expect(hiddenByPath).toBe(outside);
    expect(`${hidden}${hiddenByPath}`).not.toContain(demo.templates);
  });

  it('turns an address that keeps failing authentication away before checking keys, auditing that once', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const answer = await postModern(keyed.url, 'tools/list', {}, { headers: { authorization: `Bearer guess-${i}` } });
      statuses.push(answer.status);
    }
    // Refused as unknown keys until the address's failure budget (5) runs out, then turned away.
    const first429 = statuses.indexOf(429);
    expect(first429).toBeGreaterThan(0);
    expect(statuses.slice(0, first429).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(first429).every((status) => status === 429)).toBe(true);
    await waitForAudit(keyed.auditFile, (r) => r.rule === 'auth:flood');
    const records = await readAudit(keyed.auditFile);
    const flood = records.findIndex((r) => r.rule === 'auth:flood');
    expect(records.filter((r) => r.rule === 'auth:flood')).toHaveLength(1);
    // Nothing audited for the requests turned away after the flood line.
    expect(records.slice(flood + 1).filter((r) => r.op === 'authenticate')).toEqual([]);
  });

  it('audits a read_multiple_files refused for its size before any path was read', async () => {
    const client = await modernHttpClient(open.url, 'batcher');
    const result = (await client.callTool({
      name: 'read_multiple_files',
      arguments: { paths: ['a.md', 'b.md', 'c.md', 'd.md'] },
    })) as Result;
    expect(codeOf(result)).toBe('TOO_LARGE');
    const [record] = await waitForAudit(open.auditFile, (r) => r.client === 'batcher');
    expect(record).toMatchObject({ rule: 'limit:batch-files', decision: 'deny', tool: 'read_multiple_files' });
    await client.close();
  });
});
