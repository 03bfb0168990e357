import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { type ContentBlockLike, readBatchParts } from '../helpers/reads.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy, tempDir, writeTree } from '../helpers/workspace.js';

const CANARY = 'CANARY-7f3a9c-outside-the-roots';
const ENV_SECRET = 'demo-password';

type Result = { content: { type: string; text?: string }[]; isError?: boolean; structuredContent?: unknown };

describe('scoping: refused, audited, and nothing outside the roots is ever read', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let outside: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let attempt = 0;

  beforeAll(async () => {
    demo = await demoCopy();
    outside = await tempDir('mcpd-outside-');
    await writeTree(outside.dir, { 'secret.md': `# ${CANARY}\n`, 'dir/inner.md': `${CANARY}\n` });
    // Links inside the root that lead out of it, and one inside that leads to an excluded file.
    await symlink(join(outside.dir, 'secret.md'), join(demo.project, 'docs', 'escape.md'));
    await symlink(
      `../../../../../../../../../../..${join(outside.dir, 'secret.md')}`,
      join(demo.project, 'docs', 'relative-escape.md'),
    );
    await symlink(join(outside.dir, 'dir'), join(demo.project, 'docs', 'outdir'));
    await symlink('../.env', join(demo.project, 'docs', 'env-link.md'));
    server = await startServer(demo.config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
    await outside?.cleanup();
  });

  /** Calls one tool as a uniquely named client, so its audit records can be picked out. */
  async function call(name: string, args: Record<string, unknown>): Promise<{ result: Result; client: string }> {
    attempt += 1;
    const clientName = `attack-${attempt}`;
    const client = await modernHttpClient(server.url, clientName);
    try {
      const result = (await client.callTool({ name, arguments: args })) as Result;
      return { result, client: clientName };
    } finally {
      await client.close();
    }
  }

  function text(result: Result): string {
    return JSON.stringify(result);
  }

  function expectNoLeak(result: Result): void {
    const body = text(result);
    expect(body).not.toContain(CANARY);
    expect(body).not.toContain(ENV_SECRET);
    expect(body).not.toContain(outside.dir);
    expect(body).not.toContain('/etc/');
  }

  async function expectOneDenial(client: string, rule: RegExp): Promise<void> {
    const records = await waitForAudit(server.auditFile, (r) => r.client === client);
    expect(records, `audit records for ${client}`).toHaveLength(1);
    expect(records[0]).toMatchObject({
      decision: 'deny',
      outcome: 'denied',
      principal: 'anonymous',
      transport: 'http',
    });
    expect(records[0]?.rule).toMatch(rule);
  }

  it.each([
    ['the demo .env', { path: '.env' }, /^exclude:\.env$/],
    ['credentials.json', { path: 'credentials.json' }, /^exclude:credentials\.\*$/],
    ['a key file', { path: 'secrets/server.key' }, /^exclude:\*\.key$/],
    ['.env by URI', { path: 'file:///PROJECT/.env' }, /^exclude:/],
    ['.env with case changed', { path: '.ENV' }, /^exclude:/],
    ['an escape with ..', { path: '../../../../../../etc/passwd' }, /^containment:dotdot$/],
    ['an escape with .. in the middle', { path: 'docs/../../templates/../../../etc/passwd' }, /^containment:dotdot$/],
    ['an absolute path outside', { path: '/etc/passwd' }, /^containment:outside-roots$/],
    ['a file URI outside', { path: 'file:///etc/passwd' }, /^containment:outside-roots$/],
    ['an encoded escape', { path: 'file:///PROJECT/%2e%2e/%2e%2e/%2e%2e/etc/passwd' }, /^containment:outside-roots$/],
    ['a symlink out of the root', { path: 'docs/escape.md' }, /^containment:symlink$/],
    ['a relative symlink out of the root', { path: 'docs/relative-escape.md' }, /^containment:symlink$/],
    ['a file under a symlinked directory outside', { path: 'docs/outdir/inner.md' }, /^containment:symlink$/],
    ['a symlink to the excluded .env', { path: 'docs/env-link.md' }, /^exclude:/],
    ['a NUL byte', { path: 'README.md\u0000.png' }, /^syntax:nul$/],
    ['a file no read rule matches', { path: 'src/index.ts' }, /^default-deny:read$/],
  ])('read_file refuses %s, with one deny record', async (_label, args, rule) => {
    const path = (args.path as string).replace('/PROJECT', demo.project);
    const { result, client } = await call('read_file', { path });
    expect(result.isError).toBe(true);
    expectNoLeak(result);
    await expectOneDenial(client, rule);
  });

  it('answers an excluded file exactly like a missing one', async () => {
    const env = await call('read_file', { path: '.env' });
    const missing = await call('read_file', { path: '.env-that-does-not-exist' });
    const strip = (r: Result) => (r.content[0]?.text ?? '').replace(/MCP Demo Project:\S+?: /, 'PATH: ');
    expect(strip(env.result)).toBe(strip(missing.result));
    expect(strip(env.result)).toBe('NOT_FOUND_OR_DENIED: PATH: not found or not permitted');
    // Messages name a path by root and relative path, never by a host path.
    expect(env.result.content[0]?.text).toBe('NOT_FOUND_OR_DENIED: MCP Demo Project:.env: not found or not permitted');
    expect(JSON.stringify(env.result)).not.toContain(demo.project);
    const info = await call('get_file_info', { path: 'credentials.json' });
    const infoMissing = await call('get_file_info', { path: 'credentials-missing.md' });
    expect(strip(info.result)).toBe(strip(infoMissing.result));
  });

  it.each([
    [
      'into the read-only Shared Templates',
      { path: 'README.md', root: 'Shared Templates', content: 'x' },
      /^read-only-root$/,
    ],
    ['outside the write globs', { path: 'README.md', content: 'x' }, /^default-deny:write$/],
    ['an excluded name inside the writable area', { path: 'workspace/.env', content: 'x' }, /^exclude:/],
    ['through a symlink out of the root', { path: 'docs/outdir/new.md', content: 'x' }, /^containment:symlink$/],
    ['outside every root', { path: '/tmp/mcpd-escape.md', content: 'x' }, /^containment:outside-roots$/],
  ])('write_file refuses writing %s, with one deny record', async (_label, args, rule) => {
    const { result, client } = await call('write_file', args);
    expect(result.isError).toBe(true);
    expectNoLeak(result);
    await expectOneDenial(client, rule);
  });

  it('keeps excluded, unreadable and escaping entries out of listings, trees, search and grep', async () => {
    const listing = await call('list_directory', { path: '' });
    const names = (listing.result.structuredContent as { entries: { name: string }[] }).entries.map((e) => e.name);
    expect(names).toEqual(['README.md', 'config.yaml', 'data', 'docs', 'package.json', 'secrets', 'src', 'workspace']);
    const docs = await call('list_directory', { path: 'docs' });
    const docNames = (docs.result.structuredContent as { entries: { name: string }[] }).entries.map((e) => e.name);
    expect(docNames).toEqual(['architecture.md', 'getting-started.md']);
    const tree = await call('directory_tree', { path: '', maxDepth: 5 });
    const treeText = text(tree.result);
    for (const hidden of ['.env', 'credentials.json', 'server.key', 'index.ts', 'escape.md', 'outdir', 'env-link.md']) {
      expect(treeText).not.toContain(hidden);
    }
    const search = await call('search_files', { pattern: '*' });
    const found = (search.result.structuredContent as { matches: { path: string }[] }).matches.map((m) => m.path);
    expect(found).not.toEqual(expect.arrayContaining(['.env']));
    for (const path of found) expect(path).not.toMatch(/\.env|credentials|\.key$|escape|outdir|env-link|index\.ts/);
    const grep = await call('grep', { pattern: 'CANARY|demo-password|AKIADEMO' });
    expect((grep.result.structuredContent as { matches: unknown[] }).matches).toEqual([]);
    for (const result of [listing, docs, tree, search, grep].map((r) => r.result)) expectNoLeak(result);
  });

  it('keeps a batch going past refused files, without leaking them', async () => {
    const { result, client } = await call('read_multiple_files', {
      paths: ['README.md', '.env', 'docs/escape.md', '/etc/passwd', 'config.yaml'],
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toBeUndefined();
    const files = readBatchParts(result.content as ContentBlockLike[]);
    expect(files.map((f) => f.ok)).toEqual([true, false, false, false, true]);
    expect(files.map((f) => f.index)).toEqual([0, 1, 2, 3, 4]);
    expect(files.map((f) => (f.ok ? undefined : f.error.code)).filter(Boolean)).toEqual([
      'NOT_FOUND_OR_DENIED',
      'NOT_FOUND_OR_DENIED',
      'NOT_FOUND_OR_DENIED',
    ]);
    expectNoLeak(result);
    const records = await waitForAudit(server.auditFile, (r) => r.client === client, 5);
    // The files are read several at once: their records come in the order the decisions were made.
    const byRequest = new Map(records.map((r) => [r.requested, r.decision]));
    expect(['README.md', '.env', 'docs/escape.md', '/etc/passwd', 'config.yaml'].map((p) => byRequest.get(p))).toEqual([
      'allow',
      'deny',
      'deny',
      'deny',
      'allow',
    ]);
  });

  it('refuses resources/read of excluded and escaping URIs as resource-not-found and audits it', async () => {
    const client = await modernHttpClient(server.url, 'resource-attacker');
    for (const uri of [`file://${demo.project}/.env`, `file://${demo.project}/docs/escape.md`, 'file:///etc/passwd']) {
      const error = await client.readResource({ uri }).then(
        () => undefined,
        (e: unknown) => e as { code?: number; message: string; data?: unknown },
      );
      // 2026-07-28: resource-not-found is -32602 with data { uri } (the URI as requested).
      expect(error?.code, uri).toBe(-32602);
      expect(error?.data).toEqual({ uri, code: 'NOT_FOUND_OR_DENIED' });
      expect(error?.message).not.toContain(outside.dir);
    }
    await client.close();
    const records = await waitForAudit(server.auditFile, (r) => r.client === 'resource-attacker', 3);
    expect(records.map((r) => [r.method, r.decision])).toEqual([
      ['resources/read', 'deny'],
      ['resources/read', 'deny'],
      ['resources/read', 'deny'],
    ]);
  });

  it('never produced an allowed audit record for anything outside a root', async () => {
    const records = await waitForAudit(server.auditFile, () => true, 1);
    const allowed = records.filter((r) => r.decision === 'allow');
    expect(allowed.length).toBeGreaterThan(0);
    for (const record of allowed) {
      expect(['MCP Demo Project', 'Shared Templates']).toContain(record.root);
      expect(record.path ?? '').not.toMatch(/^\.\.|^\//);
    }
  });
});
