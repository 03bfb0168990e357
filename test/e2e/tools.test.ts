import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { readFileParts } from '../helpers/reads.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy, writeTree } from '../helpers/workspace.js';

type Result = {
  content: { type: string; text?: string; resource?: { blob?: string; mimeType?: string } }[];
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
};

describe('workspace tools over a real client', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;

  const call = async (name: string, args: Record<string, unknown>) =>
    (await client.callTool({ name, arguments: args })) as Result;
  const ok = async (name: string, args: Record<string, unknown>) => {
    const result = await call(name, args);
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    return result;
  };
  const failure = async (name: string, args: Record<string, unknown>) => {
    const result = await call(name, args);
    expect(result.isError).toBe(true);
    const code = (result._meta?.['dev.mcpd/error'] as { code: string } | undefined)?.code;
    return { code, text: result.content[0]?.text ?? '' };
  };

  beforeAll(async () => {
    demo = await demoCopy();
    // A writable area with enough files for pagination, a big file and a binary one.
    const files: Record<string, string | Buffer> = {};
    for (let i = 0; i < 25; i++)
      files[`workspace/many/file-${String(i).padStart(2, '0')}.md`] = `# file ${i}\nneedle ${i}\n`;
    files['workspace/big.txt'] = `${'0123456789abcdef'.repeat(128 * 1024)}`; // 2 MiB
    files['workspace/image.json'] = Buffer.from([0x7b, 0x00, 0x01, 0x02, 0xff, 0xfe, 0x7d]);
    await writeTree(demo.project, files);
    server = await startServer(demo.config);
    client = await modernHttpClient(server.url, 'tools-test');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it('list_directory pages through a directory with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = (
        await ok('list_directory', { path: 'workspace/many', limit: 10, details: true, ...(cursor ? { cursor } : {}) })
      ).structuredContent as {
        entries: { name: string; type: string; size: number }[];
        total: number;
        nextCursor?: string;
      };
      expect(page.total).toBe(25);
      for (const entry of page.entries) {
        expect(entry.type).toBe('file');
        expect(entry.size).toBeGreaterThan(0);
      }
      seen.push(...page.entries.map((e) => e.name));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(25);
    expect(new Set(seen).size).toBe(25);
    expect(seen).toEqual([...seen].sort());
    // Without details, names and kinds only: nothing is stat'ed.
    const bare = (await ok('list_directory', { path: 'workspace/many', limit: 5 })).structuredContent as {
      entries: Record<string, unknown>[];
    };
    expect(bare.entries).toHaveLength(5);
    for (const entry of bare.entries) {
      expect(Object.keys(entry).sort()).toEqual(['name', 'type']);
    }
    expect((await failure('list_directory', { path: 'workspace/many', cursor: 'not-a-cursor' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await failure('list_directory', { path: 'README.md' })).code).toBe('NOT_A_DIRECTORY');
  });

  it('directory_tree says when depth or entry caps cut it short', async () => {
    const shallow = (await ok('directory_tree', { path: '', maxDepth: 1 })).structuredContent as {
      truncated: boolean;
      truncatedBy: string[];
      tree: { name: string; truncated?: boolean; children?: unknown }[];
    };
    expect(shallow.truncated).toBe(true);
    expect(shallow.truncatedBy).toEqual(['depth']);
    expect(shallow.tree.find((n) => n.name === 'docs')?.truncated).toBe(true);
    const capped = (await ok('directory_tree', { path: '', maxDepth: 5, maxEntries: 5 })).structuredContent as {
      entries: number;
      truncatedBy: string[];
    };
    expect(capped.entries).toBe(5);
    expect(capped.truncatedBy).toContain('entries');
    const full = (await ok('directory_tree', { path: 'docs' })).structuredContent as { truncated: boolean };
    expect(full.truncated).toBe(false);
  });

  it('get_file_info returns metadata and the ETag', async () => {
    const info = (await ok('get_file_info', { path: 'README.md' })).structuredContent as Record<string, unknown>;
    const onDisk = await stat(join(demo.project, 'README.md'));
    expect(info).toMatchObject({
      type: 'file',
      size: onDisk.size,
      path: 'README.md',
      root: 'MCP Demo Project',
      mimeType: 'text/markdown',
    });
    expect(info.etag).toMatch(/^"[\w-]{22}"$/);
    const dir = (await ok('get_file_info', { path: 'docs' })).structuredContent as Record<string, unknown>;
    expect(dir.type).toBe('directory');
  });

  it('read_file answers with the contents once, beside a metadata block, and no structured content', async () => {
    const whole = await ok('read_file', { path: 'docs/architecture.md' });
    const expected = await readFile(join(demo.project, 'docs/architecture.md'), 'utf8');
    expect(whole.structuredContent).toBeUndefined();
    const { metadata, block } = readFileParts(whole.content);
    expect(block).toEqual({ type: 'text', text: expected });
    expect(JSON.stringify(whole).split('stateless MCP server replicas')).toHaveLength(2);
    expect(metadata).toMatchObject({
      uri: `file://${demo.project}/docs/architecture.md`,
      complete: true,
      encoding: 'utf-8',
      mimeType: 'text/markdown',
      size: Buffer.byteLength(expected),
    });
    expect(metadata.etag).toMatch(/^"[\w-]{22}"$/);
    const lines = readFileParts(
      (await ok('read_file', { path: 'docs/architecture.md', startLine: 3, endLine: 4 })).content,
    );
    expect(lines.block.text).toBe(`${expected.split('\n').slice(2, 4).join('\n')}\n`);
    expect(lines.metadata.range).toEqual({ unit: 'lines', start: 3, end: 4 });
    expect(lines.metadata.complete).toBe(false);
    const bytes = readFileParts(
      (await ok('read_file', { path: 'docs/architecture.md', offset: 2, length: 12 })).content,
    );
    expect(bytes.block.text).toBe(expected.slice(2, 14));
    expect(bytes.metadata.range).toEqual({ unit: 'bytes', start: 2, end: 14 });
  });

  it('read_file refuses a file above the cap and points to ranges; ranges of it work', async () => {
    const refused = await failure('read_file', { path: 'workspace/big.txt' });
    expect(refused.code).toBe('TOO_LARGE');
    expect(refused.text).toMatch(/offset\/length.*startLine\/endLine/);
    const part = await ok('read_file', { path: 'workspace/big.txt', offset: 1024 * 1024, length: 32 });
    expect(readFileParts(part.content).block.text).toBe('0123456789abcdef0123456789abcdef');
    const tooBigRange = await failure('read_file', { path: 'workspace/big.txt', offset: 0, length: 2 * 1024 * 1024 });
    expect(tooBigRange.code).toBe('TOO_LARGE');
  });

  it('read_file returns binary files as a base64 blob with a MIME type', async () => {
    const result = await ok('read_file', { path: 'workspace/image.json' });
    const { metadata, block } = readFileParts(result.content);
    expect(block.type).toBe('resource');
    expect(Buffer.from(block.resource?.blob ?? '', 'base64')).toEqual(
      Buffer.from([0x7b, 0x00, 0x01, 0x02, 0xff, 0xfe, 0x7d]),
    );
    expect(block.resource?.mimeType).toBe('application/json');
    expect(block.resource?.uri).toBe(metadata.uri);
    expect(metadata).toMatchObject({ encoding: 'base64', complete: true, size: 7 });
  });

  it('write_file writes atomically, honours createOnly and refuses a stale ETag', async () => {
    const created = (await ok('write_file', { path: 'workspace/new.md', content: 'one\n' })).structuredContent as {
      etag: string;
      created: boolean;
    };
    expect(created.created).toBe(true);
    expect(await readFile(join(demo.project, 'workspace/new.md'), 'utf8')).toBe('one\n');
    expect((await failure('write_file', { path: 'workspace/new.md', content: 'x', createOnly: true })).code).toBe(
      'ALREADY_EXISTS',
    );
    const second = (await ok('write_file', { path: 'workspace/new.md', content: 'two\n', expectedEtag: created.etag }))
      .structuredContent as { etag: string; created: boolean };
    expect(second.created).toBe(false);
    expect(second.etag).not.toBe(created.etag);
    const stale = await failure('write_file', {
      path: 'workspace/new.md',
      content: 'three\n',
      expectedEtag: created.etag,
    });
    expect(stale.code).toBe('CONFLICT');
    expect(await readFile(join(demo.project, 'workspace/new.md'), 'utf8')).toBe('two\n');
    await ok('write_file', {
      path: 'workspace/b64.md',
      content: Buffer.from('hé').toString('base64'),
      encoding: 'base64',
    });
    expect(await readFile(join(demo.project, 'workspace/b64.md'), 'utf8')).toBe('hé');
    expect((await failure('write_file', { path: 'workspace/missing-dir/x.md', content: 'x' })).code).toBe(
      'NOT_FOUND_OR_DENIED',
    );
  });

  it('edit_file shows a dry-run diff, applies exact edits and refuses ambiguous ones', async () => {
    await ok('write_file', { path: 'workspace/edit.md', content: 'alpha\nbeta\ngamma\nbeta\n' });
    const dry = (
      await ok('edit_file', {
        path: 'workspace/edit.md',
        edits: [{ oldText: 'alpha', newText: 'ALPHA' }],
        dryRun: true,
      })
    ).structuredContent as { diff: string; dryRun: boolean };
    expect(dry.dryRun).toBe(true);
    expect(dry.diff).toContain('-alpha\n+ALPHA');
    expect(await readFile(join(demo.project, 'workspace/edit.md'), 'utf8')).toBe('alpha\nbeta\ngamma\nbeta\n');
    const ambiguous = await failure('edit_file', {
      path: 'workspace/edit.md',
      edits: [{ oldText: 'beta', newText: 'B' }],
    });
    expect(ambiguous.code).toBe('EDIT_MISMATCH');
    expect(ambiguous.text).toContain('occurs 2 times');
    expect(
      (await failure('edit_file', { path: 'workspace/edit.md', edits: [{ oldText: 'zeta', newText: 'z' }] })).code,
    ).toBe('EDIT_MISMATCH');
    await ok('edit_file', {
      path: 'workspace/edit.md',
      edits: [
        { oldText: 'alpha', newText: 'ALPHA' },
        { oldText: 'beta', newText: 'BETA', replaceAll: true },
      ],
    });
    expect(await readFile(join(demo.project, 'workspace/edit.md'), 'utf8')).toBe('ALPHA\nBETA\ngamma\nBETA\n');
    // Editing needs read permission too: a writable but unreadable file is refused.
    await writeFile(join(demo.project, 'workspace/hidden.bin'), 'secret');
    expect(
      (await failure('edit_file', { path: 'workspace/hidden.bin', edits: [{ oldText: 's', newText: 'S' }] })).code,
    ).toBe('NOT_FOUND_OR_DENIED');
  });

  it('create_directory, move_file and delete_file, each checked at both ends', async () => {
    expect((await ok('create_directory', { path: 'workspace/a/b/c' })).structuredContent?.created).toBe(true);
    expect((await ok('create_directory', { path: 'workspace/a/b/c' })).structuredContent?.created).toBe(false);
    await ok('write_file', { path: 'workspace/a/b/c/file.md', content: 'x' });
    await ok('move_file', { source: 'workspace/a/b/c/file.md', destination: 'workspace/a/moved.md' });
    expect(await readFile(join(demo.project, 'workspace/a/moved.md'), 'utf8')).toBe('x');
    await ok('write_file', { path: 'workspace/a/other.md', content: 'y' });
    expect(
      (await failure('move_file', { source: 'workspace/a/other.md', destination: 'workspace/a/moved.md' })).code,
    ).toBe('ALREADY_EXISTS');
    expect((await failure('move_file', { source: 'workspace/a/moved.md', destination: 'README.md' })).code).toBe(
      'WRITE_DENIED',
    );
    expect((await failure('move_file', { source: 'README.md', destination: 'workspace/readme-copy.md' })).code).toBe(
      'WRITE_DENIED',
    );
    expect((await failure('delete_file', { path: 'workspace/a/b' })).code).toBe('DIRECTORY_NOT_EMPTY');
    await ok('delete_file', { path: 'workspace/a/b/c' });
    await ok('delete_file', { path: 'workspace/a/moved.md' });
    expect((await failure('delete_file', { path: 'workspace/a/moved.md' })).code).toBe('NOT_FOUND_OR_DENIED');
    expect((await failure('delete_file', { path: 'README.md', root: 'Shared Templates' })).code).toBe('WRITE_DENIED');
  });

  it('search_files finds by glob or substring across roots, with limit and cursor', async () => {
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const page = (await ok('search_files', { pattern: 'file-*.md', limit: 7, ...(cursor ? { cursor } : {}) }))
        .structuredContent as { matches: { path: string; root: string }[]; nextCursor?: string };
      expect(page.matches.length).toBeLessThanOrEqual(7);
      all.push(...page.matches.map((m) => m.path));
      cursor = page.nextCursor;
    } while (cursor);
    expect(all).toHaveLength(25);
    const both = (await ok('search_files', { pattern: 'readme' })).structuredContent as { matches: { root: string }[] };
    expect(both.matches.map((m) => m.root).sort()).toEqual(['MCP Demo Project', 'Shared Templates']);
    const one = (await ok('search_files', { pattern: 'readme', root: 'Shared Templates' })).structuredContent as {
      matches: { uri: string }[];
    };
    expect(one.matches).toHaveLength(1);
  });

  it('grep matches lines by regex, bounded, skipping binaries, and stops a runaway pattern', async () => {
    const result = (await ok('grep', { pattern: 'needle 1\\d', include: '*.md' })).structuredContent as {
      matches: { path: string; line: number; text: string }[];
      truncated: boolean;
    };
    expect(result.matches).toHaveLength(10);
    expect(result.matches[0]).toMatchObject({ line: 2, text: 'needle 10' });
    const limited = (await ok('grep', { pattern: 'needle', maxMatches: 3 })).structuredContent as {
      matches: unknown[];
      truncated: boolean;
    };
    expect(limited.matches).toHaveLength(3);
    expect(limited.truncated).toBe(true);
    const insensitive = (await ok('grep', { pattern: 'MCP DEMO', caseInsensitive: true, root: 'MCP Demo Project' }))
      .structuredContent as { matches: unknown[]; skippedBinary: number };
    expect(insensitive.matches.length).toBeGreaterThan(0);
    expect(insensitive.skippedBinary).toBeGreaterThanOrEqual(1);
    expect((await failure('grep', { pattern: '(unclosed' })).code).toBe('INVALID_ARGUMENT');
    await writeFile(join(demo.project, 'workspace/redos.txt'), `${'a'.repeat(40)}!\n`);
    const started = Date.now();
    const slow = await failure('grep', { pattern: '^(a+)+$', path: 'workspace' });
    expect(slow.code).toBe('INVALID_ARGUMENT');
    expect(slow.text).toMatch(/took longer than/);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 30_000);

  it('process_large_dataset summarises a file and reports progress per chunk', async () => {
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const result = (await client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'data/sales.csv', chunkSize: 16384 } },
      { onprogress: (p) => progress.push(p) },
    )) as Result;
    const summary = result.structuredContent as {
      bytes: number;
      lines: number;
      records: number;
      chunks: number;
      checksum: string;
    };
    const size = (await stat(join(demo.project, 'data/sales.csv'))).size;
    expect(summary).toMatchObject({ bytes: size, lines: 5001, records: 5000, chunks: Math.ceil(size / 16384) });
    expect(summary.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(progress).toHaveLength(summary.chunks);
    expect(progress.every((p) => p.message?.startsWith('Processed: '))).toBe(true);
    expect(progress.at(-1)).toMatchObject({ progress: size, total: size });
  });

  it('process_large_dataset stops promptly when the client cancels, and the audit says so', async () => {
    const lines = Array.from({ length: 50_000 }, (_, i) => `${i},row ${i},${'x'.repeat(60)}`).join('\n');
    await writeFile(join(demo.project, 'workspace/huge.csv'), `${lines}\n`.repeat(8)); // ~28 MB
    const canceller = await modernHttpClient(server.url, 'canceller');
    const controller = new AbortController();
    let chunksSeen = 0;
    const call = canceller.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/huge.csv', chunkSize: 4096 } },
      {
        signal: controller.signal,
        onprogress: () => {
          chunksSeen += 1;
          if (chunksSeen === 3) controller.abort('test cancels');
        },
      },
    );
    await expect(call).rejects.toThrow();
    const [record] = await waitForAudit(server.auditFile, (r) => r.client === 'canceller' && r.outcome === 'cancelled');
    expect(record).toMatchObject({
      tool: 'process_large_dataset',
      decision: 'allow',
      outcome: 'cancelled',
      error: 'CANCELLED',
    });
    // Prompt: far less than the time a full pass over 7000 chunks would take.
    expect(record?.durationMs).toBeLessThan(5000);
    await canceller.close();
    // The server is still serving.
    expect((await ok('list_roots', {})).structuredContent).toBeDefined();
  });

  it('audits every tool access with bytes and duration', async () => {
    const records = await waitForAudit(server.auditFile, (r) => r.client === 'tools-test' && r.tool === 'read_file', 1);
    const read = records.find((r) => r.path === 'docs/architecture.md' && r.outcome === 'ok');
    expect(read).toMatchObject({
      op: 'read',
      decision: 'allow',
      rule: 'read:*.md',
      transport: 'http',
      method: 'tools/call',
    });
    expect(read?.bytes).toBeGreaterThan(0);
    expect(typeof read?.durationMs).toBe('number');
    expect(read?.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
