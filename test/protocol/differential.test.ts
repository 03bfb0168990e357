import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SERVER_INFO_META_KEY } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.js';
import { TOOLS } from '../../src/mcp/tools/index.js';
import { readAudit } from '../helpers/audit.js';
import { modernRequest, rawRequest } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * The fast path (src/http/fastPath.ts) promises to answer exactly as the SDK's reference handler
 * does. This holds the two side by side: one corpus of raw HTTP requests, sent one at a time and in
 * the same order to two servers on identical copies of the demo, one with `server.fastPath: true`
 * and one with `false`. Status, media type, the other response headers, the JSON-RPC messages and
 * the audit records must be equal once what legitimately differs between two servers is
 * normalised away.
 */

type Demo = Awaited<ReturnType<typeof demoCopy>>;
type Era = 'modern' | 'legacy';
type Side = 'fast' | 'reference';
type Params = Record<string, unknown>;

/**
 * What a request is built from on one server: its own copy of the demo (absolute paths and URIs
 * differ by copy) and its own earlier answers (cursors and ETags differ by server too).
 */
interface Context {
  readonly demo: Demo;
  /** The JSON-RPC result an earlier case got from this server, as received. */
  result(caseName: string): Params;
}

type ParamsOf = Params | ((ctx: Context) => Params);

/** One raw HTTP request. */
interface Sent {
  readonly method: 'POST' | 'GET';
  readonly headers: Record<string, string>;
  readonly body: string;
}

type Build = (ctx: Context) => Sent;

interface Case {
  readonly name: string;
  readonly send: Build;
  /** The fast path must answer it: what makes this more than the reference compared with itself. */
  readonly fast?: true;
  /** Refused at the edge before the exchange starts: there is no request log line to wait for. */
  readonly edge?: true;
  /** The JSON-RPC error code the answer must carry (on both sides, since they are equal). */
  readonly code?: number;
}

const LEGACY_VERSION = '2025-11-25';
const USER_AGENT = 'mcpd-differential-test';
/** limits.maxResultBytes of both servers: low enough that the demo's dataset crosses it. */
const MAX_RESULT_BYTES = 150_000;
/** Bytes of the probe file whose read result measures a read result's overhead. */
const PROBE_BYTES = 100_000;

// Ids are fixed when the corpus is built, so both servers see the very same body.
let lastId = 0;
const nextId = () => ++lastId;

const resolve = (params: ParamsOf, ctx: Context): Params => (typeof params === 'function' ? params(ctx) : params);

/** Header edits: a string sets a header, null removes one the builder would send. */
type HeaderEdits = Record<string, string | null>;

function edited(headers: Record<string, string>, edits: HeaderEdits = {}): Record<string, string> {
  const out: Record<string, string> = { 'user-agent': USER_AGENT, ...headers };
  for (const [name, value] of Object.entries(edits)) {
    if (value === null) delete out[name];
    else out[name] = value;
  }
  return out;
}

interface Tweaks {
  readonly id?: number | string;
  /** More `_meta` fields (a progressToken). */
  readonly meta?: Params;
  readonly headers?: HeaderEdits;
}

/** A 2026-07-28 request: the per-request envelope and the standard headers (raw.ts), then any edits. */
function modern(method: string, params: ParamsOf = {}, tweaks: Tweaks = {}): Build {
  const id = tweaks.id ?? nextId();
  return (ctx) => {
    const request = modernRequest(method, resolve(params, ctx), {
      id,
      client: 'differential',
      ...(tweaks.meta ? { meta: tweaks.meta } : {}),
    });
    return { method: 'POST', headers: edited(request.headers, tweaks.headers), body: request.body };
  };
}

/** A request with its JSON body rewritten after it was built: what no builder would send. */
const rewritten =
  (build: Build, edit: (body: Params) => unknown): Build =>
  (ctx) => {
    const sent = build(ctx);
    return { ...sent, body: JSON.stringify(edit(JSON.parse(sent.body) as Params)) };
  };

function withoutMeta(body: Params, key: string): Params {
  const params = body.params as Params;
  const { [key]: _dropped, ...meta } = params._meta as Params;
  return { ...body, params: { ...params, _meta: meta } };
}

const withoutId = (build: Build) => rewritten(build, ({ id: _id, ...rest }) => rest);

function legacyHeaders(edits?: HeaderEdits): Record<string, string> {
  return edited(
    {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': LEGACY_VERSION,
    },
    edits,
  );
}

/** A 2025-era stateless request (no envelope, the version in the header); `params: undefined` sends none. */
function legacy(method: string, params: ParamsOf | undefined = {}, tweaks: Tweaks = {}): Build {
  const id = tweaks.id ?? nextId();
  return (ctx) => {
    const resolved = params === undefined ? undefined : resolve(params, ctx);
    const body = {
      jsonrpc: '2.0',
      id,
      method,
      ...(resolved === undefined ? {} : { params: tweaks.meta ? { ...resolved, _meta: tweaks.meta } : resolved }),
    };
    return { method: 'POST', headers: legacyHeaders(tweaks.headers), body: JSON.stringify(body) };
  };
}

/** Any body with 2025-era headers: batches, broken JSON. */
const rawLegacy =
  (body: string, headers?: HeaderEdits): Build =>
  () => ({ method: 'POST', headers: legacyHeaders(headers), body });

const request = (era: Era, method: string, params: ParamsOf = {}, tweaks: Tweaks = {}) =>
  era === 'modern' ? modern(method, params, tweaks) : legacy(method, params, tweaks);

const tool = (era: Era, name: string, args: ParamsOf = {}, tweaks: Tweaks = {}) =>
  request(era, 'tools/call', (ctx) => ({ name, arguments: resolve(args, ctx) }), tweaks);

const projectFile = (demo: Demo, rel: string) => pathToFileURL(join(demo.project, rel)).href;
const structured = (result: Params) => result.structuredContent as Params;

/** A value an earlier answer must have carried: without it the case would silently test something else. */
function required(value: unknown, what: string): unknown {
  if (value === undefined) throw new Error(`the earlier answer has no ${what}`);
  return value;
}

/** The size of a tool result as the tool returned it: without what the 2026-07-28 encoding adds. */
function bareResultBytes(result: Params): number {
  const { resultType: _type, _meta, ...rest } = result;
  const { [SERVER_INFO_META_KEY]: _server, ...meta } = (_meta ?? {}) as Params;
  return Buffer.byteLength(JSON.stringify(Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest));
}

/** The two kinds of case, their names prefixed with the era they are in. */
function kinds(prefix: string) {
  return {
    /** The fast path must answer it (and answer as the reference does). */
    fast: (name: string, send: Build, code?: number): Case => ({ name: `${prefix}: ${name}`, send, fast: true, code }),
    /** Either path may answer it; the answers must be equal. */
    plain: (name: string, send: Build, code?: number): Case => ({ name: `${prefix}: ${name}`, send, code }),
  };
}

/** Cases every era can express; write targets carry the era so the two runs do not collide. */
function eachEra(era: Era): Case[] {
  const w = `workspace/diff-${era}`;
  const named = (name: string) => `${era}: ${name}`;
  const { fast, plain } = kinds(era);
  return [
    // Every tool, with arguments that succeed on the demo, writes ordered so each finds what it needs.
    fast('list_roots', tool(era, 'list_roots')),
    fast('list_directory docs', tool(era, 'list_directory', { path: 'docs' })),
    fast('list_directory, first page of 2', tool(era, 'list_directory', { limit: 2 })),
    fast(
      'list_directory, second page',
      tool(era, 'list_directory', (ctx) => ({
        limit: 2,
        cursor: required(structured(ctx.result(named('list_directory, first page of 2'))).nextCursor, 'nextCursor'),
      })),
    ),
    fast('directory_tree', tool(era, 'directory_tree')),
    fast('get_file_info README.md', tool(era, 'get_file_info', { path: 'README.md' })),
    fast('read_file docs/architecture.md', tool(era, 'read_file', { path: 'docs/architecture.md' })),
    fast('read_file lines 2-3', tool(era, 'read_file', { path: 'README.md', startLine: 2, endLine: 3 })),
    fast('read_file bytes 0-10', tool(era, 'read_file', { path: 'README.md', offset: 0, length: 10 })),
    fast(
      'read_file by absolute path',
      tool(era, 'read_file', ({ demo }) => ({ path: join(demo.project, 'README.md') })),
    ),
    fast(
      'read_file by file:// URI',
      tool(era, 'read_file', ({ demo }) => ({ path: projectFile(demo, 'docs/getting-started.md') })),
    ),
    fast(
      'read_multiple_files with one excluded',
      tool(era, 'read_multiple_files', { paths: ['README.md', 'docs/architecture.md', '.env', 'nope.md'] }),
    ),
    fast('write_file', tool(era, 'write_file', { path: `${w}.md`, content: 'first line\nsecond line\n' })),
    fast(
      'write_file base64',
      tool(era, 'write_file', {
        path: `${w}-b64.txt`,
        content: Buffer.from('hello\n').toString('base64'),
        encoding: 'base64',
      }),
    ),
    fast(
      'write_file binary content',
      tool(era, 'write_file', {
        path: `${w}-bin.txt`,
        content: Buffer.from([0, 1, 2, 254, 255, 0, 137, 80]).toString('base64'),
        encoding: 'base64',
      }),
    ),
    fast('read_file binary', tool(era, 'read_file', { path: `${w}-bin.txt` })),
    fast(
      'resources/read binary',
      request(era, 'resources/read', ({ demo }) => ({ uri: projectFile(demo, `${w}-bin.txt`) })),
    ),
    fast(
      'edit_file dry run',
      tool(era, 'edit_file', { path: `${w}.md`, edits: [{ oldText: 'first', newText: 'dry' }], dryRun: true }),
    ),
    fast('edit_file', tool(era, 'edit_file', { path: `${w}.md`, edits: [{ oldText: 'second', newText: 'edited' }] })),
    fast(
      'write_file with the ETag edit_file returned',
      tool(era, 'write_file', (ctx) => ({
        path: `${w}.md`,
        content: 'replaced\n',
        expectedEtag: required(structured(ctx.result(named('edit_file'))).etag, 'etag'),
      })),
    ),
    fast('create_directory', tool(era, 'create_directory', { path: `${w}-dir/sub` })),
    fast('create_directory that exists', tool(era, 'create_directory', { path: `${w}-dir` })),
    fast('move_file', tool(era, 'move_file', { source: `${w}.md`, destination: `${w}-dir/moved.md` })),
    fast('delete_file', tool(era, 'delete_file', { path: `${w}-dir/moved.md` })),
    fast('delete_file empty directory', tool(era, 'delete_file', { path: `${w}-dir/sub` })),
    fast('search_files *.md', tool(era, 'search_files', { pattern: '*.md' })),
    fast('search_files, first page of 2', tool(era, 'search_files', { pattern: 'e', limit: 2 })),
    fast(
      'search_files, second page',
      tool(era, 'search_files', (ctx) => ({
        pattern: 'e',
        limit: 2,
        cursor: required(structured(ctx.result(named('search_files, first page of 2'))).nextCursor, 'nextCursor'),
      })),
    ),
    fast('grep MCP in *.md', tool(era, 'grep', { pattern: 'MCP', include: '*.md' })),
    fast('grep case-insensitive', tool(era, 'grep', { pattern: 'readable', caseInsensitive: true, maxMatches: 3 })),
    fast('process_large_dataset', tool(era, 'process_large_dataset', { path: 'data/sales.csv' })),
    fast(
      'process_large_dataset with a progress token',
      tool(
        era,
        'process_large_dataset',
        { path: 'data/sales.csv', chunkSize: 65536 },
        { meta: { progressToken: `progress-${era}` } },
      ),
    ),
    fast(
      'process_large_dataset with a numeric progress token',
      tool(era, 'process_large_dataset', { path: 'docs/architecture.md' }, { meta: { progressToken: 7 } }),
    ),
    fast('list_roots with a progress token', tool(era, 'list_roots', {}, { meta: { progressToken: 'unused' } })),
    fast('list_databases', tool(era, 'list_databases', {})),
    fast('describe_database shop', tool(era, 'describe_database', { database: 'shop' })),
    fast(
      'query with a parameter',
      tool(era, 'query', { database: 'shop', sql: 'SELECT name FROM customers WHERE city = ?', params: ['Oslo'] }),
    ),
    fast(
      'query refused (an excluded column)',
      tool(era, 'query', { database: 'shop', sql: 'SELECT * FROM customers' }),
    ),
    fast('query of an unknown database', tool(era, 'query', { database: 'nope', sql: 'SELECT 1' })),
    plain('query without sql', tool(era, 'query', { database: 'shop' })),

    // Shapes of a valid call the schema and the JSON-RPC layer accept.
    fast('list_roots without arguments', request(era, 'tools/call', { name: 'list_roots' })),
    fast('read_file with an unknown argument', tool(era, 'read_file', { path: 'README.md', bogus: 1 })),
    fast(
      'tools/call with an extra params field',
      request(era, 'tools/call', { name: 'list_roots', arguments: {}, extra: true }),
    ),
    fast('id 0', tool(era, 'list_roots', {}, { id: 0 })),
    fast('id empty string', tool(era, 'list_roots', {}, { id: '' })),
    plain('id -1.5', tool(era, 'list_roots', {}, { id: -1.5 })),
    plain(
      'jsonrpc missing',
      rewritten(tool(era, 'list_roots'), ({ jsonrpc: _v, ...body }) => body),
    ),
    plain(
      'jsonrpc "1.0"',
      rewritten(tool(era, 'list_roots'), (body) => ({ ...body, jsonrpc: '1.0' })),
    ),
    plain(
      'an unknown top-level member',
      rewritten(tool(era, 'list_roots'), (body) => ({ ...body, extra: 1 })),
    ),
    plain('content-type in capitals', tool(era, 'list_roots', {}, { headers: { 'content-type': 'APPLICATION/JSON' } })),
    fast(
      'content-type with a charset',
      tool(era, 'list_roots', {}, { headers: { 'content-type': 'application/json; charset=utf-8' } }),
    ),

    // limits.maxResultBytes must mean the same on both paths. A probe read measures the overhead of
    // a read result; then one 10 bytes under the limit as the tool returns it (fewer bytes than the
    // 2026-07-28 encoding adds to it), and one well over it, whose error names its size. The file
    // names have the same length, so the results differ in their contents' length alone.
    fast(
      'write_file size probe',
      tool(era, 'write_file', { path: `${w}-probe.txt`, content: 'x'.repeat(PROBE_BYTES) }),
    ),
    fast('read_file size probe', tool(era, 'read_file', { path: `${w}-probe.txt` })),
    fast(
      'write_file a file whose read result is 10 bytes under maxResultBytes',
      tool(era, 'write_file', (ctx) => {
        const overhead = bareResultBytes(ctx.result(named('read_file size probe'))) - PROBE_BYTES;
        return { path: `${w}-bound.txt`, content: 'x'.repeat(MAX_RESULT_BYTES - 10 - overhead) };
      }),
    ),
    fast('read_file a result 10 bytes under maxResultBytes', tool(era, 'read_file', { path: `${w}-bound.txt` })),
    fast('read_file a result over maxResultBytes', tool(era, 'read_file', { path: 'data/sales.csv' })),

    // Calls the schema accepts and the tool refuses: still the fast path's to answer.
    fast('read_file missing file', tool(era, 'read_file', { path: 'docs/missing.md' })),
    fast('read_file .env (excluded)', tool(era, 'read_file', { path: '.env' })),
    fast('read_file secrets/server.key (excluded)', tool(era, 'read_file', { path: 'secrets/server.key' })),
    fast('read_file src/index.ts (no read rule)', tool(era, 'read_file', { path: 'src/index.ts' })),
    fast('read_file ../ outside the root', tool(era, 'read_file', { path: '../../../../../../etc/passwd' })),
    fast('read_file /etc/passwd', tool(era, 'read_file', { path: '/etc/passwd' })),
    fast('read_file a directory', tool(era, 'read_file', { path: 'docs' })),
    fast('read_file in an unknown root', tool(era, 'read_file', { path: 'README.md', root: 'No Such Root' })),
    fast('read_file with both ranges', tool(era, 'read_file', { path: 'README.md', offset: 1, startLine: 1 })),
    fast(
      'write_file into the read-only root',
      tool(era, 'write_file', { path: 'new.md', root: 'Shared Templates', content: 'x' }),
    ),
    fast('write_file outside the write rules', tool(era, 'write_file', { path: 'README.md', content: 'x' })),
    fast(
      'write_file createOnly on an existing file',
      tool(era, 'write_file', { path: 'workspace/notes.md', content: 'x', createOnly: true }),
    ),
    fast(
      'write_file with a stale expectedEtag',
      tool(era, 'write_file', { path: 'workspace/notes.md', content: 'x', expectedEtag: '"AAAAAAAAAAAAAAAAAAAAAA"' }),
    ),
    fast(
      'write_file into a missing directory',
      tool(era, 'write_file', { path: 'workspace/no/such/dir.md', content: 'x' }),
    ),
    fast(
      'edit_file whose oldText is absent',
      tool(era, 'edit_file', { path: 'workspace/notes.md', edits: [{ oldText: 'not there', newText: 'x' }] }),
    ),
    fast('move_file out of the root', tool(era, 'move_file', { source: `${w}-b64.txt`, destination: '../../out.txt' })),
    fast('delete_file a directory with contents', tool(era, 'delete_file', { path: 'workspace' })),
    fast('delete_file missing', tool(era, 'delete_file', { path: `${w}-missing.md` })),
    fast('list_directory with a bad cursor', tool(era, 'list_directory', { cursor: 'not-a-cursor' })),
    fast('search_files with a bad cursor', tool(era, 'search_files', { pattern: '*', cursor: 'bad' })),
    fast('grep with an invalid regex', tool(era, 'grep', { pattern: '(' })),
    fast('get_file_info outside the root', tool(era, 'get_file_info', { path: '/etc' })),

    // Arguments the input schema refuses, and tools that do not exist: the reference handler's.
    plain('read_file path of the wrong type', tool(era, 'read_file', { path: 42 })),
    plain('read_file without path', tool(era, 'read_file', {})),
    plain('write_file without content', tool(era, 'write_file', { path: `${w}-x.md` })),
    plain('list_directory limit 0', tool(era, 'list_directory', { limit: 0 })),
    plain('search_files empty pattern', tool(era, 'search_files', { pattern: '' })),
    plain('edit_file with no edits', tool(era, 'edit_file', { path: 'workspace/notes.md', edits: [] })),
    plain(
      'process_large_dataset chunkSize too small',
      tool(era, 'process_large_dataset', { path: 'data/sales.csv', chunkSize: 1 }),
    ),
    plain(
      'tools/call with arguments as an array',
      request(era, 'tools/call', { name: 'list_roots', arguments: ['x'] }),
    ),
    plain('tools/call of an unknown tool', tool(era, 'no_such_tool', { path: 'README.md' }), -32602),
    plain('tools/call without a name', request(era, 'tools/call', { arguments: {} })),
    plain(
      'progress token of the wrong type',
      tool(era, 'process_large_dataset', { path: 'docs/architecture.md' }, { meta: { progressToken: { x: 1 } } }),
    ),

    fast('tools/list', request(era, 'tools/list')),
    plain('tools/list with a cursor', request(era, 'tools/list', { cursor: 'x' })),
    fast('resources/list', request(era, 'resources/list')),
    fast(
      'resources/list, second page',
      request(era, 'resources/list', (ctx) => ({
        cursor: required(ctx.result(named('resources/list')).nextCursor, 'nextCursor'),
      })),
    ),
    fast('resources/list with a bad cursor', request(era, 'resources/list', { cursor: 'garbage' })),
    plain('resources/list with a numeric cursor', request(era, 'resources/list', { cursor: 42 })),
    fast('resources/templates/list', request(era, 'resources/templates/list')),
    fast(
      'resources/read README.md',
      request(era, 'resources/read', ({ demo }) => ({ uri: projectFile(demo, 'README.md') })),
    ),
    fast(
      'resources/read a template file',
      request(era, 'resources/read', ({ demo }) => ({ uri: pathToFileURL(join(demo.templates, 'service.yaml')).href })),
    ),
    fast(
      'resources/read a missing file',
      request(era, 'resources/read', ({ demo }) => ({ uri: projectFile(demo, 'docs/missing.md') })),
      -32602,
    ),
    fast(
      'resources/read .env',
      request(era, 'resources/read', ({ demo }) => ({ uri: projectFile(demo, '.env') })),
    ),
    fast('resources/read file:///etc/passwd', request(era, 'resources/read', { uri: 'file:///etc/passwd' }), -32602),
    fast('resources/read an https URI', request(era, 'resources/read', { uri: 'https://example.com/x' })),
    plain('resources/read without a uri', request(era, 'resources/read', {})),

    plain('ping', request(era, 'ping')),
    plain('unknown method', request(era, 'no/such/method'), -32601),
    plain('prompts/list (no prompts capability)', request(era, 'prompts/list')),
  ];
}

/** 2026-07-28 only: discovery, the standard headers' agreement with the body (-32020), the envelope. */
function modernOnly(): Case[] {
  const { fast, plain } = kinds('modern');
  const listRoots = { name: 'list_roots', arguments: {} };
  const readme = ({ demo }: Context) => ({ uri: projectFile(demo, 'README.md') });
  // Standard headers that disagree with the body: -32020, from the reference handler.
  const mismatch = (name: string, send: Build) => plain(name, send, -32020);
  return [
    plain('server/discover', modern('server/discover')),
    fast('string id', modern('tools/list', {}, { id: 'string-id' })),
    mismatch(
      'Mcp-Method disagrees with the body',
      modern('tools/list', {}, { headers: { 'mcp-method': 'tools/call' } }),
    ),
    mismatch('Mcp-Method missing', modern('tools/list', {}, { headers: { 'mcp-method': null } })),
    mismatch('Mcp-Method empty', modern('tools/list', {}, { headers: { 'mcp-method': '' } })),
    mismatch('Mcp-Name missing on tools/call', modern('tools/call', listRoots, { headers: { 'mcp-name': null } })),
    mismatch(
      'Mcp-Name disagrees on tools/call',
      modern('tools/call', listRoots, { headers: { 'mcp-name': 'read_file' } }),
    ),
    plain(
      'Mcp-Name base64-encoded',
      modern('tools/call', listRoots, {
        headers: { 'mcp-name': `=?base64?${Buffer.from('list_roots').toString('base64')}?=` },
      }),
    ),
    mismatch('Mcp-Name missing on resources/read', modern('resources/read', readme, { headers: { 'mcp-name': null } })),
    mismatch(
      'Mcp-Name disagrees on resources/read',
      modern('resources/read', readme, { headers: { 'mcp-name': 'file:///etc/passwd' } }),
    ),
    mismatch(
      'MCP-Protocol-Version header missing',
      modern('tools/call', listRoots, { headers: { 'mcp-protocol-version': null } }),
    ),
    mismatch(
      'MCP-Protocol-Version header disagrees with the envelope',
      modern('tools/list', {}, { headers: { 'mcp-protocol-version': LEGACY_VERSION } }),
    ),
    plain(
      'envelope claims an unknown revision',
      modern(
        'tools/list',
        {},
        {
          meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01' },
          headers: { 'mcp-protocol-version': '2099-01-01' },
        },
      ),
      -32022,
    ),
    plain(
      'envelope without clientInfo',
      rewritten(modern('tools/call', listRoots), (body) => withoutMeta(body, 'io.modelcontextprotocol/clientInfo')),
    ),
    plain(
      'envelope without clientCapabilities',
      rewritten(modern('tools/list'), (body) => withoutMeta(body, 'io.modelcontextprotocol/clientCapabilities')),
    ),
    plain(
      'envelope with clientInfo of the wrong type',
      modern('tools/list', {}, { meta: { 'io.modelcontextprotocol/clientInfo': 'me' } }),
    ),
    plain(
      'standard headers without the envelope',
      rewritten(modern('tools/list'), (body) => ({ ...body, params: {} })),
    ),
    plain('tools/call as a notification (no id)', withoutId(modern('tools/call', listRoots))),
    plain(
      'notifications/cancelled for nothing in flight',
      withoutId(modern('notifications/cancelled', { requestId: 999, reason: 'test' })),
    ),
    // The 2026-07-28 transport does not insist on Accept; both answer as asked.
    fast('Accept without text/event-stream', modern('tools/list', {}, { headers: { accept: 'application/json' } })),
    fast('Accept without application/json', modern('tools/list', {}, { headers: { accept: 'text/event-stream' } })),
    fast('no Accept header', modern('tools/list', {}, { headers: { accept: null } })),
    fast(
      'progress token, Accept without text/event-stream',
      modern(
        'tools/call',
        { name: 'process_large_dataset', arguments: { path: 'docs/architecture.md' } },
        { meta: { progressToken: 'json-only' }, headers: { accept: 'application/json' } },
      ),
    ),
    plain('content-type text/plain', modern('tools/list', {}, { headers: { 'content-type': 'text/plain' } })),
    // The shapes the fast path's own classification must leave to the SDK's (it sees only strict
    // requests with valid envelopes): each answered as the reference handler answers it.
    plain(
      'a fractional id',
      rewritten(modern('tools/call', listRoots), (body) => ({ ...body, id: 1.5 })),
    ),
    plain(
      'a key beside jsonrpc, id, method and params',
      rewritten(modern('tools/list'), (body) => ({ ...body, x: 1 })),
    ),
    plain('a fractional progress token', modern('tools/call', listRoots, { meta: { progressToken: 0.5 } })),
    plain(
      'a related-task key in _meta',
      modern('tools/call', listRoots, { meta: { 'io.modelcontextprotocol/related-task': { taskId: 't' } } }),
    ),
    plain(
      'clientCapabilities of the wrong shape',
      modern('tools/list', {}, { meta: { 'io.modelcontextprotocol/clientCapabilities': { roots: 5 } } }),
    ),
    plain(
      'an unknown log level in the envelope',
      modern('tools/list', {}, { meta: { 'io.modelcontextprotocol/logLevel': 'loud' } }),
    ),
    fast('an integer progress token', modern('tools/call', listRoots, { meta: { progressToken: 7 } })),
    fast('the same envelope again (remembered)', modern('tools/call', listRoots)),
  ];
}

/** 2025-era only: the handshake, notifications, batches, the transport's own header checks. */
function legacyOnly(): Case[] {
  const { fast, plain } = kinds('legacy');
  const listRoots = { name: 'list_roots', arguments: {} };
  const initialize = {
    protocolVersion: LEGACY_VERSION,
    capabilities: {},
    clientInfo: { name: 'differential-legacy', version: '1.0.0' },
  };
  return [
    plain(
      'a fractional id',
      rewritten(legacy('tools/call', listRoots), (body) => ({ ...body, id: 2.5 })),
    ),
    plain(
      'a key beside jsonrpc, id, method and params',
      rewritten(legacy('tools/list'), (body) => ({ ...body, x: 1 })),
    ),
    plain('a fractional progress token', legacy('tools/call', { ...listRoots, _meta: { progressToken: 0.5 } })),
    plain(
      'a 2026 version header without the envelope',
      legacy('tools/list', {}, { headers: { 'mcp-protocol-version': '2026-07-28' } }),
    ),
    fast('no version header', legacy('tools/list', {}, { headers: { 'mcp-protocol-version': null } })),
    plain('initialize', legacy('initialize', initialize, { headers: { 'mcp-protocol-version': null } })),
    plain('notifications/initialized', withoutId(legacy('notifications/initialized', undefined))),
    plain(
      'batch of tools/list, tools/call and ping',
      rawLegacy(
        JSON.stringify([
          { jsonrpc: '2.0', id: nextId(), method: 'tools/list', params: {} },
          { jsonrpc: '2.0', id: nextId(), method: 'tools/call', params: listRoots },
          { jsonrpc: '2.0', id: nextId(), method: 'ping' },
        ]),
      ),
    ),
    fast('tools/list without params', legacy('tools/list', undefined)),
    fast('resources/list without params', legacy('resources/list', undefined)),
    plain('tools/call with _meta a string', legacy('tools/call', { ...listRoots, _meta: 'x' })),
    plain(
      'id null',
      rewritten(legacy('tools/call', listRoots), (body) => ({ ...body, id: null })),
    ),
    fast(
      'tools/call without MCP-Protocol-Version',
      legacy('tools/call', listRoots, { headers: { 'mcp-protocol-version': null } }),
    ),
    fast(
      'tools/call as 2025-03-26',
      legacy('tools/call', listRoots, { headers: { 'mcp-protocol-version': '2025-03-26' } }),
    ),
    plain(
      '2026-07-28 header on a body without the envelope',
      legacy('tools/list', {}, { headers: { 'mcp-protocol-version': '2026-07-28' } }),
    ),
    plain(
      'unsupported MCP-Protocol-Version',
      legacy('tools/list', {}, { headers: { 'mcp-protocol-version': '2024-01-01' } }),
    ),
    plain('Accept without text/event-stream', legacy('tools/list', {}, { headers: { accept: 'application/json' } })),
    plain('Accept without application/json', legacy('tools/list', {}, { headers: { accept: 'text/event-stream' } })),
    plain('content-type text/plain', legacy('tools/list', {}, { headers: { 'content-type': 'text/plain' } })),
    plain('malformed JSON', rawLegacy('{"jsonrpc": "2.0", "id": 1, "method": '), -32700),
    plain('empty body', rawLegacy(''), -32700),
    plain('JSON that is not JSON-RPC', rawLegacy('{"hello": "world"}')),
    plain('GET (no standalone stream when stateless)', () => ({ method: 'GET', headers: legacyHeaders(), body: '' })),
  ];
}

const OVERSIZED = JSON.stringify({
  jsonrpc: '2.0',
  id: nextId(),
  method: 'tools/call',
  params: { name: 'write_file', arguments: { path: 'workspace/big.md', content: 'x'.repeat(4 * 1024 * 1024) } },
});

const CORPUS: readonly Case[] = [
  ...eachEra('modern'),
  ...eachEra('legacy'),
  ...modernOnly(),
  ...legacyOnly(),
  // Refused by the edge before either path is chosen: equal by construction, kept as a guard.
  { name: 'any: body over server.maxBodyBytes', send: rawLegacy(OVERSIZED), edge: true },
];

// ---------------------------------------------------------------------------------------------
// Comparing answers.

/** One answer, as compared, and what the test needs to know about it. */
interface Exchange {
  readonly status: number;
  readonly mediaType: string | null;
  /** The response headers that are neither framing nor per request. */
  readonly headers: Record<string, unknown>;
  /** JSON: the parsed body; SSE: the parsed `data:` messages in order; otherwise the text. Normalised. */
  readonly body: unknown;
  /** The final JSON-RPC result, as received, for later cases to take cursors and ETags from. */
  readonly result: Params | undefined;
  /** The code of the first JSON-RPC error in the answer. */
  readonly errorCode: number | undefined;
  readonly requestId: string;
  /** Who answered, from the server's request log line. */
  readonly path: 'fast' | 'reference' | 'edge';
  /** What was asked: the JSON-RPC method and, for tools/call, the tool. */
  readonly method: string | undefined;
  readonly tool: string | undefined;
}

/**
 * Headers that frame the body or name the request: the fast path sends a JSON answer with its
 * length, the reference handler chunked; the content type is compared by media type.
 */
const UNCOMPARED_HEADERS = new Set([
  'date',
  'x-request-id',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'content-type',
]);

const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
/**
 * etagOf: 22 base64url characters in quotes. They hash the inode, and the two copies have their
 * own inodes, so no ETag is the same on both sides, written during the run or not.
 */
const ETAG = /"[A-Za-z0-9_-]{22}"/g;
/** process_large_dataset's text block ends with its duration. */
const DATASET_MS = /(sha256:[0-9a-f]{64}), \d+ ms/g;

/** Text that is itself JSON (a metadata block, a structured result rendered as text) is compared as JSON. */
function nestedJson(text: string): unknown {
  const start = text.trimStart()[0];
  if (start !== '{' && start !== '[') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Longer strings are compared by length and digest, so that a mismatch prints readably. */
const LONG_STRING = 2000;

function normaliseValue(value: unknown): unknown {
  if (typeof value === 'string') {
    const nested = nestedJson(value);
    if (nested !== undefined) return { '<json text>': normaliseValue(nested) };
    const text = value.replace(ISO_TIME, '<time>').replace(ETAG, '"<etag>"').replace(DATASET_MS, '$1, <n> ms');
    if (text.length <= LONG_STRING) return text;
    const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
    return `${text.slice(0, 60)}... <${text.length} chars, sha256 ${digest}>`;
  }
  if (Array.isArray(value)) return value.map(normaliseValue);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, v]) => [
        key,
        key === 'durationMs' && typeof v === 'number' ? '<ms>' : normaliseValue(v),
      ]),
    );
  }
  return value;
}

/**
 * The copy's directory and the server's request id are replaced in the raw text, before parsing,
 * so they go wherever they appear: in URIs, in messages, in JSON encoded inside a text block.
 */
function normaliseText(text: string, demo: Demo, requestId: string): string {
  let out = text.split(demo.dir).join('<demo>');
  if (requestId) out = out.split(requestId).join('<request-id>');
  return out;
}

/** JSON: the message; SSE: the `data:` messages in order (keep-alive comments are timing, not content). */
function messagesOf(text: string, mediaType: string | null): unknown {
  if (mediaType === 'text/event-stream') {
    return text
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => JSON.parse(line.slice(5).trim()) as unknown);
  }
  if (text === '') return null;
  if (mediaType === 'application/json') return JSON.parse(text) as unknown;
  return text;
}

function finalResult(messages: unknown): Params | undefined {
  const list = Array.isArray(messages) ? messages : [messages];
  const last = list.findLast((message) => (message as Params | null)?.result !== undefined) as Params | undefined;
  return last?.result as Params | undefined;
}

function firstErrorCode(messages: unknown): number | undefined {
  const list = Array.isArray(messages) ? messages : [messages];
  const failed = list.find((message) => (message as Params | null)?.error !== undefined) as Params | undefined;
  return (failed?.error as { code?: number } | undefined)?.code;
}

function comparedHeaders(headers: IncomingHttpHeaders): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !UNCOMPARED_HEADERS.has(name)));
}

/** The parts of an answer that must be equal. */
const comparable = ({ status, mediaType, headers, body }: Exchange) => ({ status, mediaType, headers, body });

/** What an audit record must agree on: who, what and the decision, never when or which request. */
function comparableAudit(record: AuditRecord, demo: Demo): Params {
  // The chain's fields differ by process (each server has its own): what is compared is the access.
  const {
    time: _time,
    requestId,
    durationMs: _ms,
    userAgent: _ua,
    seq: _seq,
    prev: _prev,
    hash: _hash,
    ...rest
  } = record;
  return normaliseValue(JSON.parse(normaliseText(JSON.stringify(rest), demo, requestId))) as Params;
}

function whatWasAsked(body: string): { method: string | undefined; tool: string | undefined } {
  const parsed = nestedJson(body) as { method?: unknown; params?: { name?: unknown } } | undefined;
  const method = typeof parsed?.method === 'string' ? parsed.method : undefined;
  const tool = method === 'tools/call' && typeof parsed?.params?.name === 'string' ? parsed.params.name : undefined;
  return { method, tool };
}

// ---------------------------------------------------------------------------------------------

interface Served {
  readonly demo: Demo;
  readonly server: TestServer;
  readonly logs: Record<string, unknown>[];
  readonly answers: Map<string, Exchange>;
}

describe('the fast path answers every request as the reference handler does', () => {
  const sides = {} as Record<Side, Served>;

  async function start(fastPath: boolean): Promise<Served> {
    const demo = await demoCopy();
    // The same config on both sides but for fastPath. No rate limit may refuse part of the corpus;
    // a small result limit and resource page make the corpus reach both.
    const file = await demo.configWith(
      'differential.yaml',
      'limits:\n' +
        '  rateLimit: { perSecond: 100000, burst: 100000 }\n' +
        `  maxResultBytes: ${MAX_RESULT_BYTES}\n` +
        'resources:\n' +
        '  pageSize: 3\n',
    );
    const yaml = await readFile(file, 'utf8');
    await writeFile(file, yaml.replace('  port: 8000', `  port: 8000\n  fastPath: ${fastPath}`));
    const logs: Record<string, unknown>[] = [];
    // Info level: the per-request log line says which path answered (mcpExchange.ts adds
    // `path: 'reference'` when the reference handler did), which no response header tells.
    const server = await startServer(file, { logLevel: 'info' }, logs);
    expect(server.config.server.fastPath).toBe(fastPath);
    return { demo, server, logs, answers: new Map() };
  }

  beforeAll(async () => {
    sides.fast = await start(true);
    sides.reference = await start(false);
  });
  afterAll(async () => {
    for (const side of Object.values(sides)) {
      await side.server.close();
      await side.demo.cleanup();
    }
  });

  async function send(side: Side, c: Case): Promise<Exchange> {
    const { demo, server, logs, answers } = sides[side];
    const sent = c.send({
      demo,
      result(name) {
        const result = answers.get(name)?.result;
        if (!result) throw new Error(`${c.name} needs the result of ${name}, which the ${side} server did not give`);
        return result;
      },
    });
    const response = await rawRequest(server.url, sent);
    const requestId = String(response.headers['x-request-id'] ?? '');
    const contentType = response.headers['content-type'];
    const mediaType = typeof contentType === 'string' ? (contentType.split(';')[0]?.trim() ?? null) : null;
    // The log line is written once the response has closed, which can be after the client has it all.
    const line = c.edge
      ? undefined
      : await until(() => logs.find((entry) => entry.msg === 'request' && entry.requestId === requestId), {
          what: `the request log line of ${c.name} (${requestId}) on the ${side} server`,
        });
    const messages = messagesOf(response.body, mediaType);
    const exchange: Exchange = {
      status: response.status,
      mediaType,
      headers: comparedHeaders(response.headers),
      body: normaliseValue(messagesOf(normaliseText(response.body, demo, requestId), mediaType)),
      result: finalResult(messages),
      errorCode: firstErrorCode(messages),
      requestId,
      path: line === undefined ? 'edge' : line.path === 'reference' ? 'reference' : 'fast',
      ...whatWasAsked(sent.body),
    };
    answers.set(c.name, exchange);
    return exchange;
  }

  it('has a corpus of uniquely named cases', () => {
    expect(new Set(CORPUS.map((c) => c.name)).size).toBe(CORPUS.length);
  });

  it.each(CORPUS)('$name', async (c) => {
    // One at a time, fast side first, so both servers see the same sequence of writes.
    const fast = await send('fast', c);
    const reference = await send('reference', c);
    expect(reference.path, 'fastPath: false answers everything off the fast path').not.toBe('fast');
    if (c.fast) expect(fast.path, 'answered by the fast path').toBe('fast');
    if (c.code !== undefined) expect(reference.errorCode, 'JSON-RPC error code').toBe(c.code);
    expect(
      comparable(fast),
      `${c.name}\n  fast:      ${JSON.stringify(comparable(fast))}\n  reference: ${JSON.stringify(comparable(reference))}`,
    ).toEqual(comparable(reference));
  });

  it('answered every tool, tools/list and the resources requests on the fast path, in both eras', () => {
    const answers = [...sides.fast.answers.values()];
    const onFastPath = answers.filter((answer) => answer.path === 'fast');
    // A succeeding call of each tool was served by the fast path in each era.
    for (const era of ['modern', 'legacy'] as const) {
      const succeeded = new Set(
        CORPUS.filter((c) => c.name.startsWith(`${era}: `))
          .map((c) => sides.fast.answers.get(c.name))
          .filter((answer) => answer?.path === 'fast' && answer.tool && answer.result && !answer.result.isError)
          .map((answer) => answer?.tool),
      );
      expect([...succeeded].sort(), era).toEqual(TOOLS.map((t) => t.name).sort());
    }
    expect(TOOLS).toHaveLength(17);
    const methods = new Set(onFastPath.map((answer) => answer.method));
    for (const method of ['tools/list', 'resources/list', 'resources/read', 'resources/templates/list']) {
      expect(methods, method).toContain(method);
    }
    expect(onFastPath.length, 'most of the corpus').toBeGreaterThan(answers.length / 2);
    // Never a status of its own: whatever the fast path answered, it answered with the reference's.
    for (const c of CORPUS) {
      const fast = sides.fast.answers.get(c.name);
      const reference = sides.reference.answers.get(c.name);
      if (fast?.path === 'fast' && reference) expect(fast.status, c.name).toBe(reference.status);
    }
  });

  it('wrote the same audit records, in the same order (a batch read: the same set), for every request', async () => {
    // Closing flushes the audit sinks: every record of every case is in the files afterwards.
    await sides.fast.server.close();
    await sides.reference.server.close();
    const recordsBy = async (side: Side) => {
      const byRequest = new Map<string, AuditRecord[]>();
      for (const record of await readAudit(sides[side].server.auditFile)) {
        byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
      }
      return byRequest;
    };
    const audits = { fast: await recordsBy('fast'), reference: await recordsBy('reference') };
    let compared = 0;
    for (const c of CORPUS) {
      const [fast, reference] = (['fast', 'reference'] as const).map((side) => {
        const answer = sides[side].answers.get(c.name);
        const records = answer ? (audits[side].get(answer.requestId) ?? []) : [];
        const comparable = records.map((record) => comparableAudit(record, sides[side].demo));
        // read_multiple_files reads its files at once: their records come in the order the reads end.
        const concurrent = records[0]?.tool === 'read_multiple_files';
        return concurrent ? comparable.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) : comparable;
      });
      compared += fast?.length ?? 0;
      expect
        .soft(fast, `${c.name}\n  fast:      ${JSON.stringify(fast)}\n  reference: ${JSON.stringify(reference)}`)
        .toEqual(reference);
    }
    // Not vacuous: the corpus reads and writes files, and each access is audited.
    expect(compared).toBeGreaterThan(100);
    // Every record belongs to a request of the corpus: none went astray under another id.
    for (const side of ['fast', 'reference'] as const) {
      const sentIds = new Set([...sides[side].answers.values()].map((answer) => answer.requestId));
      expect(
        [...audits[side].keys()].filter((id) => !sentIds.has(id)),
        side,
      ).toEqual([]);
    }
  });
});
