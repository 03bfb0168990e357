import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import {
  legacyV2HttpClient,
  modernHttpClient,
  modernStdioClient,
  v1HttpClient,
  v1StdioClient,
} from '../helpers/clients.js';
import { MCPD_BIN, serveMcpd } from '../helpers/process.js';
import { demoCopy } from '../helpers/workspace.js';

const TOOL_NAMES = [
  'list_roots',
  'list_directory',
  'directory_tree',
  'get_file_info',
  'read_file',
  'read_multiple_files',
  'write_file',
  'edit_file',
  'create_directory',
  'move_file',
  'delete_file',
  'search_files',
  'grep',
  'process_large_dataset',
  'list_databases',
  'describe_database',
  'query',
];

interface Listing {
  roots: { uri: string; name: string; description: string; access_policy?: { read: string[]; write: string[] } }[];
  access_policy: { read: string[]; write: string[]; exclude: string[] };
}

/** The seed's listRoots example, as the demo config reproduces it. */
function expectSeedShape(listing: Listing, projectUri: string, templatesUri: string): void {
  expect(listing.roots).toHaveLength(2);
  expect(listing.roots[0]).toEqual({
    uri: projectUri,
    name: 'MCP Demo Project',
    description: 'Demo project files and resources',
  });
  expect(listing.roots[1]).toMatchObject({
    uri: templatesUri,
    name: 'Shared Templates',
    description: 'Read-only template library',
  });
  expect(listing.roots[1]?.access_policy?.write).toEqual([]);
  expect(listing.access_policy.read).toEqual(expect.arrayContaining(['*.md', '*.json', '*.yaml']));
  expect(listing.access_policy.write).toEqual(['workspace/**/*']);
  expect(listing.access_policy.exclude).toEqual(expect.arrayContaining(['.env', 'credentials.*', '*.key']));
}

type CallResult = { content: unknown; structuredContent?: unknown; isError?: boolean };

/** What the v1 and the v2 SDK clients have in common here. */
interface ToolCaller {
  callTool(params: { name: string; arguments: Record<string, unknown> }): Promise<unknown>;
}

/** Calls list_roots; the text and the structured content must agree. */
async function listRoots(client: ToolCaller): Promise<Listing> {
  const result = (await client.callTool({ name: 'list_roots', arguments: {} })) as CallResult;
  expect(result.isError).toBeFalsy();
  const content = result.content as { type: string; text: string }[];
  const fromText = JSON.parse(content[0]?.text ?? '') as Listing;
  expect(result.structuredContent).toEqual(fromText);
  return fromText;
}

describe('real clients against the built binary', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  const expectSeedListing = async (client: ToolCaller) =>
    expectSeedShape(await listRoots(client), `file://${demo.project}`, `file://${demo.templates}`);

  beforeAll(async () => {
    demo = await demoCopy();
  });
  afterAll(async () => demo?.cleanup());

  describe('over HTTP (mcpd serve on a real socket)', () => {
    let serving: Awaited<ReturnType<typeof serveMcpd>>;
    const auditFile = () => join(demo.dir, 'http-audit.log');

    beforeAll(async () => {
      serving = await serveMcpd(['--config', demo.config, '--port', '0', '--audit-file', auditFile()]);
    });
    afterAll(async () => {
      expect(await serving?.stop()).toBe(0);
    });

    it('SDK v2 client on 2026-07-28 lists the tools with schemas and annotations, and calls list_roots', async () => {
      const client = await modernHttpClient(serving.url);
      expect(client.getProtocolEra()).toBe('modern');
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(TOOL_NAMES);
      for (const tool of tools) {
        expect(tool.description?.length, tool.name).toBeGreaterThan(20);
        expect(tool.inputSchema.type).toBe('object');
        // The read tools answer with content alone: a structuredContent-first client must see the text.
        const contentOnly = tool.name === 'read_file' || tool.name === 'read_multiple_files';
        expect(tool.outputSchema?.type, tool.name).toBe(contentOnly ? undefined : 'object');
        expect(typeof tool.annotations?.readOnlyHint, tool.name).toBe('boolean');
        expect(typeof tool.annotations?.destructiveHint, tool.name).toBe('boolean');
        expect(typeof tool.annotations?.idempotentHint, tool.name).toBe('boolean');
      }
      const readOnly = tools.filter((tool) => tool.annotations?.readOnlyHint).map((tool) => tool.name);
      expect(readOnly).toEqual([
        'list_roots',
        'list_directory',
        'directory_tree',
        'get_file_info',
        'read_file',
        'read_multiple_files',
        'search_files',
        'grep',
        'process_large_dataset',
        'list_databases',
        'describe_database',
        'query',
      ]);
      await expectSeedListing(client);
      await client.close();
    });

    it('SDK v1 client (2025-11-25) lists the tools and calls list_roots', async () => {
      const client = await v1HttpClient(serving.url);
      expect(client.getServerVersion()?.name).toBe('mcpd');
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(TOOL_NAMES);
      await expectSeedListing(client);
      await client.close();
    });

    it('SDK v2 client on the 2025 handshake is served on the same endpoint', async () => {
      const client = await legacyV2HttpClient(serving.url);
      expect(client.getProtocolEra()).toBe('legacy');
      await expectSeedListing(client);
      await client.close();
    });

    it('names the client and the transport in the audit record', async () => {
      const client = await modernHttpClient(serving.url, 'audit-naming-client');
      await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } });
      await client.close();
      await serving.stop();
      const records = (await readAudit(auditFile())).filter((r) => r.client === 'audit-naming-client');
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        transport: 'http',
        method: 'tools/call',
        tool: 'read_file',
        decision: 'allow',
        outcome: 'ok',
        userAgent: expect.any(String),
      });
    });

    it('names a stateless 2025-era client: its initialize by clientInfo, every later line by User-Agent', async () => {
      const legacy = await serveMcpd([
        '--config',
        demo.config,
        '--port',
        '0',
        '--audit-file',
        join(demo.dir, 'v1.log'),
      ]);
      const client = await v1HttpClient(legacy.url, 'audit-v1-client');
      await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } });
      await client.callTool({ name: 'read_file', arguments: { path: '.env' } });
      await client.close();
      await legacy.stop();
      const records = await readAudit(join(demo.dir, 'v1.log'));
      const [handshake, ...calls] = records;
      expect(handshake).toMatchObject({
        method: 'initialize',
        op: 'initialize',
        client: 'audit-v1-client',
        requested: '2025-11-25',
        decision: 'allow',
        outcome: 'ok',
      });
      expect(handshake?.reason).toMatch(/"audit-v1-client" version 1\.0\.0/);
      expect(calls.map((r) => r.decision)).toEqual(['allow', 'deny']);
      for (const record of records) {
        expect(record.userAgent, JSON.stringify(record)).toEqual(expect.any(String));
        expect(record.client, JSON.stringify(record)).not.toBeNull();
      }
      for (const call of calls) expect(call.client).toBe(call.userAgent);
    });
  });

  describe('over stdio (spawning the built binary)', () => {
    it('SDK v2 client on 2026-07-28 lists the tools and calls list_roots', async () => {
      const client = await modernStdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
      expect(client.getProtocolEra()).toBe('modern');
      expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(TOOL_NAMES);
      await expectSeedListing(client);
      await client.close();
    });

    it('SDK v1 client (2025-11-25) lists the tools and calls list_roots', async () => {
      const client = await v1StdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
      expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(TOOL_NAMES);
      await expectSeedListing(client);
      await client.close();
    });
  });

  it('the embedded default (no config at all) serves the demo on loopback', async () => {
    const serving = await serveMcpd(['--port', '0'], { MCPD_CONFIG: '' });
    try {
      expect(new URL(serving.url).hostname).toBe('127.0.0.1');
      const client = await modernHttpClient(serving.url);
      const listing = await listRoots(client);
      expect(listing.roots.map((root) => root.name)).toEqual(['MCP Demo Project', 'Shared Templates']);
      expect(listing.roots[0]?.uri).toMatch(/\/demo\/workspace\/mcp-demo$/);
      await client.close();
    } finally {
      expect(await serving.stop('SIGINT')).toBe(0);
    }
  });
});
