import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStdioApp } from '../../src/app/stdio.js';
import { AuditLog } from '../../src/audit/log.js';
import { DISCARD_SINK } from '../../src/audit/sink.js';
import { loadConfig } from '../../src/config/load.js';
import { ERROR_CATALOGUE, type ErrorCode, jsonRpcError, McpdError } from '../../src/errors.js';
import { toProtocolError, toToolError } from '../../src/mcp/errors.js';
import { createLogger } from '../../src/ops/logger.js';
import { messagesOf, modernRequest, postModern, rawRequest } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Every row of the error catalogue, provoked where it happens (a tool, a protocol handler, the
 * HTTP edge, the stdio transport) and checked on the wire against the row: the JSON-RPC code, the
 * HTTP status when the refusal is the whole response, and the code name in the error's data. A
 * row without a scenario fails the test, so a new code cannot be added unchecked.
 */

interface Seen {
  /** Where it was seen: a tool's isError result, a JSON-RPC error, or an HTTP refusal. */
  readonly kind: 'tool' | 'jsonrpc';
  readonly code: ErrorCode;
  readonly jsonRpc?: number;
  readonly http: number;
}

type Scenario = (env: Env) => Promise<Seen[]>;

interface Env {
  readonly server: TestServer;
  readonly tight: TestServer;
  readonly rated: TestServer;
  readonly keyed: TestServer;
  readonly project: string;
}

async function tool(server: TestServer, name: string, args: Record<string, unknown>): Promise<Seen> {
  const answer = await postModern(server.url, 'tools/call', { name, arguments: args });
  const [message] = await messagesOf(answer);
  const result = message?.result as { isError?: boolean; _meta?: Record<string, { code: ErrorCode }> } | undefined;
  expect(result?.isError, JSON.stringify(message)).toBe(true);
  const code = result?._meta?.['dev.mcpd/error']?.code as ErrorCode;
  return { kind: 'tool', code, http: answer.status };
}

/**
 * Protocol errors the SDK's dispatcher still answers itself (until the request path is ours): the
 * code and status are the catalogue's, but the SDK puts no `data.code` on them.
 */
const ANSWERED_BY_THE_SDK = new Set<ErrorCode>([
  'PARSE_ERROR',
  'INVALID_REQUEST',
  'METHOD_NOT_FOUND',
  'HEADER_MISMATCH',
]);

async function jsonRpc(response: Response, expected: ErrorCode): Promise<Seen> {
  const [message] = await messagesOf(response);
  const error = message?.error as { code: number; data?: { code?: ErrorCode } } | undefined;
  expect(error, JSON.stringify(message)).toBeDefined();
  const named = error?.data?.code ?? (ANSWERED_BY_THE_SDK.has(expected) ? expected : undefined);
  return { kind: 'jsonrpc', code: named as ErrorCode, jsonRpc: error?.code, http: response.status };
}

function post(url: string, body: string, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      ...headers,
    },
    body,
  });
}

/** What the built-in mapping makes of a code nothing in this process can provoke on purpose. */
function mapped(code: ErrorCode): Seen[] {
  const error = new McpdError(code, 'provoked by the catalogue test');
  const asTool = toToolError(error, 'r', () => {});
  const asProtocol = toProtocolError(error, 'r', () => {});
  const body = jsonRpcError(error, 7);
  expect(body).toMatchObject({ jsonrpc: '2.0', id: 7, error: { data: { code } } });
  return [
    {
      kind: 'tool',
      code: (asTool._meta?.['dev.mcpd/error'] as { code: ErrorCode } | undefined)?.code as ErrorCode,
      http: 200,
    },
    { kind: 'jsonrpc', code, jsonRpc: asProtocol.code, http: error.httpStatus ?? 200 },
  ];
}

const SCENARIOS: Record<ErrorCode, Scenario> = {
  NOT_FOUND_OR_DENIED: async ({ server, project }) => [
    await tool(server, 'read_file', { path: '.env' }),
    await jsonRpc(
      await postModern(server.url, 'resources/read', { uri: `file://${project}/.env` }),
      'NOT_FOUND_OR_DENIED',
    ),
  ],
  WRITE_DENIED: async ({ server }) => [await tool(server, 'write_file', { path: 'README.md', content: 'x' })],
  INVALID_PATH: async ({ server }) => [await tool(server, 'read_file', { path: 'a\u0000b' })],
  INVALID_ARGUMENT: async ({ server }) => [await tool(server, 'list_directory', { path: '', cursor: 'not-a-cursor' })],
  TOO_LARGE: async ({ tight }) => [
    await tool(tight, 'read_multiple_files', { paths: ['a.md', 'b.md', 'c.md'] }),
    await jsonRpc(await post(tight.url, JSON.stringify({ padding: 'x'.repeat(4096) })), 'TOO_LARGE'),
  ],
  CONFLICT: async ({ server }) => [
    await tool(server, 'write_file', { path: 'workspace/notes.md', content: 'x', expectedEtag: '"stale"' }),
  ],
  ALREADY_EXISTS: async ({ server }) => [
    await tool(server, 'write_file', { path: 'workspace/notes.md', content: 'x', createOnly: true }),
  ],
  NOT_A_FILE: async ({ server }) => [await tool(server, 'read_file', { path: 'docs' })],
  NOT_A_DIRECTORY: async ({ server }) => [await tool(server, 'list_directory', { path: 'README.md' })],
  DIRECTORY_NOT_EMPTY: async ({ server }) => [await tool(server, 'delete_file', { path: 'workspace/full' })],
  EDIT_MISMATCH: async ({ server }) => [
    await tool(server, 'edit_file', {
      path: 'workspace/notes.md',
      edits: [{ oldText: 'not in the file at all', newText: 'y' }],
    }),
  ],
  // Needs two file systems (a move across them): mapped here, provoked by nothing in one tmp dir.
  UNSUPPORTED: async () => mapped('UNSUPPORTED'),
  // Provoked for real in test/hardening/faults.test.ts (a full tmpfs).
  NO_SPACE: async () => mapped('NO_SPACE'),
  QUERY_REFUSED: async ({ server }) => [
    await tool(server, 'query', { database: 'shop', sql: 'SELECT password_hash FROM customers' }),
  ],
  // A statement SQLite accepts and then fails while running (malformed JSON at run time).
  QUERY_FAILED: async ({ server }) => [await tool(server, 'query', { database: 'shop', sql: "SELECT json('{')" })],
  // Provoked for real by every client of test/clients/matrix.test.ts.
  CANCELLED: async () => mapped('CANCELLED'),
  TIMEOUT: async ({ tight }) => [
    await tool(tight, 'process_large_dataset', { path: 'workspace/big.csv', chunkSize: 1024 }),
  ],
  // Provoked for real by the shutdown, fault and shared-state tests (a request reaching a draining
  // replica; an audit log that cannot be written; Redis down with onUnavailable: closed).
  UNAVAILABLE: async () => mapped('UNAVAILABLE'),
  INTERNAL: async () => mapped('INTERNAL'),
  PARSE_ERROR: async ({ server }) => [await jsonRpc(await post(server.url, 'this is not JSON'), 'PARSE_ERROR')],
  INVALID_REQUEST: async ({ server }) => [
    await jsonRpc(await post(server.url, '{"neither":"request nor response"}'), 'INVALID_REQUEST'),
  ],
  METHOD_NOT_FOUND: async ({ server }) => {
    const { headers, body } = modernRequest('nope/nope');
    return [await jsonRpc(await fetch(server.url, { method: 'POST', headers, body }), 'METHOD_NOT_FOUND')];
  },
  HEADER_MISMATCH: async ({ server }) => [
    await jsonRpc(
      await postModern(server.url, 'tools/list', {}, { headers: { 'mcp-method': 'resources/list' } }),
      'HEADER_MISMATCH',
    ),
  ],
  RATE_LIMITED: async ({ rated }) => {
    const seen: Seen[] = [];
    for (let i = 0; i < 10 && seen.length === 0; i++) {
      const answer = await postModern(rated.url, 'ping');
      if (answer.status === 429) seen.push(await jsonRpc(answer, 'RATE_LIMITED'));
      else await answer.body?.cancel();
    }
    return seen;
  },
  BUSY: async ({ tight }) => {
    // One long call holds the principal's only slot.
    const stop = new AbortController();
    const holding = await postModern(
      tight.url,
      'tools/call',
      { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 1024 } },
      { signal: stop.signal, meta: { progressToken: 'hold' } },
    );
    const refused = await postModern(tight.url, 'tools/list');
    stop.abort();
    await holding.body?.cancel().catch(() => {});
    return [await jsonRpc(refused, 'BUSY')];
  },
  FORBIDDEN_ORIGIN: async ({ server }) => {
    const { headers, body } = modernRequest('tools/list');
    const answer = await rawRequest(server.url, { headers: { ...headers, origin: 'https://evil.example' }, body });
    const parsed = JSON.parse(answer.body) as { error: { code: number; data: { code: ErrorCode } } };
    return [{ kind: 'jsonrpc', code: parsed.error.data.code, jsonRpc: parsed.error.code, http: answer.status }];
  },
  UNAUTHENTICATED: async ({ keyed }) => {
    const answer = await postModern(keyed.url, 'tools/list');
    // An OAuth error body, not JSON-RPC: the catalogue says so (jsonRpc null).
    expect(await answer.json()).toMatchObject({ error: 'unauthorized' });
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer /);
    return [{ kind: 'jsonrpc', code: 'UNAUTHENTICATED', http: answer.status }];
  },
};

describe('the error catalogue, row by row, on the wire', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let env: Env;

  beforeAll(async () => {
    demo = await demoCopy();
    await mkdir(join(demo.project, 'workspace/full'), { recursive: true });
    await writeFile(join(demo.project, 'workspace/full/inside.md'), 'x');
    await writeFile(join(demo.project, 'workspace/big.csv'), 'a,b,c\n'.repeat(3_000_000));
    const sha = createHash('sha256').update('the-key').digest('hex');
    env = {
      project: demo.project,
      server: await startServer(demo.config),
      tight: await startServer(
        await demo.configWith(
          'tight.yaml',
          'limits:\n  maxBatchFiles: 2\n  maxConcurrentPerPrincipal: 1\n  toolTimeouts: { process_large_dataset: 200 }\n',
        ),
        { maxBodyBytes: 1024 },
      ),
      rated: await startServer(
        await demo.configWith('rated.yaml', 'limits:\n  rateLimit: { perSecond: 0.1, burst: 3 }\n'),
      ),
      keyed: await startServer(
        await demo.configWith(
          'keyed.yaml',
          `auth:\n  mode: apiKeys\n  apiKeys:\n    - { principal: p, sha256: ${sha} }\n`,
        ),
      ),
    };
  });
  afterAll(async () => {
    for (const server of [env?.server, env?.tight, env?.rated, env?.keyed]) await server?.close();
    await demo?.cleanup();
  });

  it('has a scenario for every code', () => {
    expect(Object.keys(SCENARIOS).sort()).toEqual(Object.keys(ERROR_CATALOGUE).sort());
  });

  it.each(Object.keys(ERROR_CATALOGUE) as ErrorCode[])('%s', async (code) => {
    const row = ERROR_CATALOGUE[code];
    const seen = await SCENARIOS[code](env);
    expect(seen.length, `${code} was not provoked`).toBeGreaterThan(0);
    for (const answer of seen) {
      expect(answer.code, JSON.stringify(answer)).toBe(code);
      if (answer.kind === 'tool') {
        // A tool's refusal is a result the model reads, in a 200 response.
        expect(answer.http).toBe(200);
      } else {
        if (answer.jsonRpc !== undefined) expect(answer.jsonRpc).toBe(row.jsonRpc);
        expect(answer.http).toBe(row.http ?? 200);
      }
    }
  });

  it('answers stdio parse errors and invalid requests with the same codes', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const lines: string[] = [];
    output.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const app = await startStdioApp(loadConfig({ file: demo.config }), {
      logger: createLogger('silent'),
      audit: new AuditLog(DISCARD_SINK),
      version: 'test',
      input,
      output,
    });
    input.write('this is not JSON\n');
    input.write('{"neither":"request nor response"}\n');
    const deadline = Date.now() + 5000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    const errors = lines.map((line) => (JSON.parse(line) as { error: unknown }).error);
    expect(errors).toEqual([
      { code: ERROR_CATALOGUE.PARSE_ERROR.jsonRpc, message: 'Parse error', data: { code: 'PARSE_ERROR' } },
      { code: ERROR_CATALOGUE.INVALID_REQUEST.jsonRpc, message: 'Invalid Request', data: { code: 'INVALID_REQUEST' } },
    ]);
    input.end();
    await app.close();
  });
});
