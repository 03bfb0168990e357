import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type StdioApp, startStdioApp } from '../../src/app/stdio.js';
import { AuditLog } from '../../src/audit/log.js';
import { DISCARD_SINK } from '../../src/audit/sink.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/ops/logger.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * The stdio counterpart of differential.test.ts: one corpus of requests, in both eras, to a stdio
 * connection with the fast path on and to one with it off (every request then answered by the SDK's
 * server), each on its own copy of the demo; the answers must be the same, modulo the copies' paths,
 * times and ETags. Not vacuous: the fast connection must have answered the cases marked fast itself.
 */

type Message = Record<string, unknown>;
type Demo = Awaited<ReturnType<typeof demoCopy>>;

interface Connection {
  readonly app: StdioApp;
  readonly input: PassThrough;
  readonly messages: Message[];
  readonly demo: Demo;
}

async function connect(fastPath: boolean): Promise<Connection> {
  const demo = await demoCopy();
  const config = join(demo.dir, 'stdio.yaml');
  const yaml = await readFile(demo.config, 'utf8');
  await writeFile(config, yaml.replace('  port: 8000', `  port: 8000\n  fastPath: ${fastPath}`));
  const input = new PassThrough();
  const output = new PassThrough();
  const messages: Message[] = [];
  let pending = '';
  output.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim()) messages.push(JSON.parse(line) as Message);
      newline = pending.indexOf('\n');
    }
  });
  const app = await startStdioApp(loadConfig({ file: config }), {
    logger: createLogger('silent'),
    audit: new AuditLog(DISCARD_SINK),
    version: 'test',
    input,
    output,
  });
  return { app, input, messages, demo };
}

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'stdio-differential', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

interface Case {
  readonly name: string;
  readonly method: string;
  readonly params?: Message;
  /** The fast path answers it (once the era is settled). */
  readonly fast?: true;
}

const call = (name: string, args: Message, fast = true): Case => ({
  name: `${name} ${JSON.stringify(args)}`,
  method: 'tools/call',
  params: { name, arguments: args },
  ...(fast ? { fast: true as const } : {}),
});

/** Every case runs in both eras; write targets differ per era so the runs do not collide. */
function corpus(era: string): Case[] {
  const w = `workspace/stdio-${era}`;
  return [
    { name: 'tools/list', method: 'tools/list', fast: true },
    call('list_roots', {}),
    call('list_directory', { path: 'docs' }),
    call('directory_tree', { path: 'docs' }),
    call('get_file_info', { path: 'README.md' }),
    call('read_file', { path: 'README.md' }),
    call('read_file', { path: 'README.md', startLine: 2, endLine: 3 }),
    call('read_multiple_files', { paths: ['README.md', '.env', 'nope.md'] }),
    call('write_file', { path: `${w}/a.md`, content: 'one\ntwo\n' }),
    call('edit_file', { path: `${w}/a.md`, edits: [{ oldText: 'two', newText: 'three' }] }),
    call('create_directory', { path: `${w}/dir` }),
    call('move_file', { source: `${w}/a.md`, destination: `${w}/dir/a.md` }),
    call('delete_file', { path: `${w}/dir/a.md` }),
    call('search_files', { pattern: '*.md' }),
    call('grep', { pattern: 'MCP', include: '*.md' }),
    call('process_large_dataset', { path: 'data/sales.csv' }),
    call('read_file', { path: '.env' }),
    call('read_file', { path: '/etc/passwd' }),
    call('write_file', { path: 'README.md', content: 'x' }),
    call('get_file_info', { path: 7 }, false),
    call('no_such_tool', {}, false),
    { name: 'resources/list', method: 'resources/list', fast: true },
    { name: 'resources/templates/list', method: 'resources/templates/list', fast: true },
    { name: 'resources/read /etc/passwd', method: 'resources/read', params: { uri: 'file:///etc/passwd' }, fast: true },
    { name: 'ping', method: 'ping' },
  ];
}

/** What legitimately differs between the two connections: their demo copies, times, ETags, durations. */
function normalise(value: unknown, demo: Demo): unknown {
  const text = JSON.stringify(value)
    .split(demo.dir)
    .join('<demo>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    // An ETag (22 base64url characters in quotes, escaped once or twice in text content).
    .replace(/(?<=")[A-Za-z0-9_-]{22}(?=\\*")/g, '<etag>')
    .replace(/\\?"durationMs\\?":\d+(\.\d+)?/g, '"durationMs":0')
    .replace(/\d+ ms\b/g, 'N ms');
  return JSON.parse(text);
}

describe('stdio: the fast path answers as the SDK server does', () => {
  // A connection's era is settled by its opening exchange: one pair of connections per era.
  const pairs = new Map<string, [Connection, Connection]>();

  afterAll(async () => {
    for (const connection of [...pairs.values()].flat()) {
      connection.input.end();
      await connection.app.close();
      await connection.demo.cleanup();
    }
  });

  let nextId = 0;
  /** Sends one request to both and returns the messages each wrote for it (progress first, then the answer). */
  const exchange = async (pair: [Connection, Connection], method: string, params: Message | undefined) => {
    const id = ++nextId;
    const line = `${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) })}\n`;
    const answers = await Promise.all(
      pair.map(async (connection) => {
        const before = connection.messages.length;
        connection.input.write(line);
        await until(() => connection.messages.slice(before).some((m) => m.id === id), {
          what: `an answer to ${method} ${id}`,
        });
        return connection.messages.slice(before);
      }),
    );
    return answers as [Message[], Message[]];
  };

  it.each(['legacy', 'modern'] as const)(
    '%s era: every case answered alike, the usual ones on the fast path',
    async (era) => {
      const pair: [Connection, Connection] = await Promise.all([connect(true), connect(false)]);
      pairs.set(era, pair);
      const [fast, reference] = pair;
      const same = (a: Message[], b: Message[], what: string) =>
        expect(normalise(a, fast.demo), what).toEqual(normalise(b, reference.demo));
      if (era === 'legacy') {
        const initialize = {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'stdio-differential', version: '1' },
        };
        same(...(await exchange(pair, 'initialize', initialize)), 'initialize');
        for (const connection of pair) {
          connection.input.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
        }
      }
      const withEnvelope = (params: Message | undefined): Message | undefined =>
        era === 'modern' ? { ...(params ?? {}), _meta: { ...ENVELOPE } } : params;
      // The first request settles a 2026-07-28 connection's era; the SDK answers it on both.
      if (era === 'modern') same(...(await exchange(pair, 'tools/list', withEnvelope(undefined))), 'opening');
      let expectedFast = 0;
      for (const testCase of corpus(era)) {
        same(...(await exchange(pair, testCase.method, withEnvelope(testCase.params))), `${era}: ${testCase.name}`);
        if (testCase.fast) expectedFast += 1;
      }
      // Progress: a token on a streaming call gives the same notifications before the same answer.
      const progress = { name: 'process_large_dataset', arguments: { path: 'data/sales.csv', chunkSize: 4096 } };
      const meta = era === 'modern' ? { ...ENVELOPE, progressToken: 'p' } : { progressToken: 'p' };
      const [a, b] = await exchange(pair, 'tools/call', { ...progress, _meta: meta });
      expect(a.filter((m) => m.method === 'notifications/progress').length).toBeGreaterThan(1);
      same(a, b, `${era}: progress`);
      expect(fast.app.fastAnswered()).toBe(expectedFast + 1);
      expect(reference.app.fastAnswered()).toBe(0);
      // Not one message more or less on either side.
      expect(fast.messages.length).toBe(reference.messages.length);
    },
  );
});
