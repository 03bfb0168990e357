import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS } from '../../src/mcp/tools/index.js';
import {
  legacyV2HttpClient,
  modernHttpClient,
  modernStdioClient,
  v1HttpClient,
  v1StdioClient,
} from '../helpers/clients.js';
import { MCPD_BIN } from '../helpers/process.js';
import type { ContentBlockLike } from '../helpers/reads.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

interface CallResult {
  content: ContentBlockLike[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/**
 * What a model is given by a client that, like Claude Code and VS Code, reads only
 * `structuredContent` when a result has it, and the text blocks otherwise.
 */
function structuredFirst(result: CallResult): string {
  if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return result.content
    .map((block) => block.text ?? block.resource?.text ?? '')
    .filter((text) => text.length > 0)
    .join('\n');
}

/** Arguments that make each tool succeed on the demo, in an order where each write finds what it needs. */
const CALLS: [string, Record<string, unknown>][] = [
  ['list_roots', {}],
  ['list_directory', { path: 'docs' }],
  ['directory_tree', { path: 'docs' }],
  ['get_file_info', { path: 'README.md' }],
  ['read_file', { path: 'docs/architecture.md' }],
  ['read_multiple_files', { paths: ['README.md', 'docs/architecture.md', '.env'] }],
  ['write_file', { path: 'workspace/shape.md', content: 'first line\nsecond line\n' }],
  ['edit_file', { path: 'workspace/shape.md', edits: [{ oldText: 'second', newText: 'edited' }] }],
  ['create_directory', { path: 'workspace/shape-dir' }],
  ['move_file', { source: 'workspace/shape.md', destination: 'workspace/shape-dir/shape.md' }],
  ['delete_file', { path: 'workspace/shape-dir/shape.md' }],
  ['search_files', { pattern: '*.md' }],
  ['grep', { pattern: 'MCP', include: '*.md' }],
  ['process_large_dataset', { path: 'data/sales.csv' }],
  ['list_databases', {}],
  ['describe_database', { database: 'shop' }],
  ['query', { database: 'shop', sql: 'SELECT id, name FROM products ORDER BY id LIMIT 3' }],
];

const CONTENT_TOOLS = new Set(['read_file', 'read_multiple_files']);

describe('the shape of every tool result', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config);
    client = await modernHttpClient(server.url, 'shape-test');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it('covers all 17 tools', () => {
    expect(CALLS.map(([name]) => name).sort()).toEqual(TOOLS.map((tool) => tool.name).sort());
    expect(TOOLS).toHaveLength(17);
  });

  it('declares an output schema exactly for the tools that answer with structured content', async () => {
    const { tools } = await client.listTools();
    for (const tool of tools) {
      expect(tool.outputSchema === undefined, tool.name).toBe(CONTENT_TOOLS.has(tool.name));
    }
  });

  it('says in content only what structuredContent says, and never carries a payload twice', async () => {
    for (const [name, args] of CALLS) {
      const result = (await client.callTool({ name, arguments: args })) as CallResult;
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
      const tool = TOOLS.find((t) => t.name === name);
      if (tool?.kind !== 'structured') {
        expect(result.structuredContent, name).toBeUndefined();
        continue;
      }
      expect(result.structuredContent, name).toBeDefined();
      // content is a function of the structured value alone, so it cannot hold anything the value lacks.
      expect(result.content, name).toEqual(tool.render(result.structuredContent as never));
      const texts = result.content.map((block) => block.text ?? '');
      expect(new Set(texts).size, `${name}: a content block repeats another`).toBe(texts.length);
      for (const [i, a] of texts.entries()) {
        for (const [j, b] of texts.entries()) {
          if (i !== j && a.length > 40) expect(b.includes(a), `${name}: block ${i} repeated in block ${j}`).toBe(false);
        }
      }
    }
  });

  it('carries each file read exactly once, as text, beside a metadata block', async () => {
    const readme = await readFile(join(demo.project, 'README.md'), 'utf8');
    const architecture = await readFile(join(demo.project, 'docs/architecture.md'), 'utf8');
    const single = (await client.callTool({
      name: 'read_file',
      arguments: { path: 'README.md' },
    })) as CallResult;
    expect(JSON.stringify(single).split(JSON.stringify(readme).slice(1, -1))).toHaveLength(2);
    const batch = (await client.callTool({
      name: 'read_multiple_files',
      arguments: { paths: ['README.md', 'docs/architecture.md'] },
    })) as CallResult;
    const wire = JSON.stringify(batch);
    for (const text of [readme, architecture]) {
      expect(wire.split(JSON.stringify(text).slice(1, -1))).toHaveLength(2);
    }
    expect(batch.content.map((block) => block.type)).toEqual(['text', 'text', 'text', 'text']);
  });
});

describe('a client that reads only structuredContent when it is present', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let expected: string;

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config);
    expected = await readFile(join(demo.project, 'docs/architecture.md'), 'utf8');
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  const readThrough = async (client: Client | V1Client) => {
    const single = (await client.callTool({
      name: 'read_file',
      arguments: { path: 'docs/architecture.md' },
    })) as CallResult;
    const batch = (await client.callTool({
      name: 'read_multiple_files',
      arguments: { paths: ['README.md', 'docs/architecture.md'] },
    })) as CallResult;
    await client.close();
    return [structuredFirst(single), structuredFirst(batch)];
  };

  const stdioArgs = () => [MCPD_BIN, 'stdio', '--config', demo.config, '--audit-file', join(demo.dir, 'stdio.log')];

  it.each([
    ['HTTP, 2026-07-28', () => modernHttpClient(server.url, 'structured-first')],
    ['HTTP, 2025-11-25 (SDK v2 legacy handshake)', () => legacyV2HttpClient(server.url, 'structured-first')],
    ['HTTP, 2025-11-25 (SDK v1)', () => v1HttpClient(server.url, 'structured-first')],
    ['stdio, 2026-07-28', () => modernStdioClient(process.execPath, stdioArgs())],
    ['stdio, 2025-11-25 (SDK v1)', () => v1StdioClient(process.execPath, stdioArgs())],
  ] as const)('sees the text of every file it reads: %s', async (_label, connect) => {
    const [single, batch] = await readThrough(await connect());
    expect(single).toContain(expected);
    expect(batch).toContain(expected);
  });
});
