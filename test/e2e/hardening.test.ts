import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modernHttpClient } from '../helpers/clients.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

/** Regression tests for what an attacker found (issue 9), each against the running server. */

type Result = { isError?: boolean; content: { text?: string }[]; _meta?: Record<string, unknown> };
const codeOf = (result: Result) => (result._meta?.['dev.mcpd/error'] as { code?: string } | undefined)?.code;

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
