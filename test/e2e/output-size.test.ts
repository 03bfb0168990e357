import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v1StdioClient } from '../helpers/clients.js';
import { MCPD_BIN } from '../helpers/process.js';
import { REPO, tempDir } from '../helpers/workspace.js';

/**
 * A model pays for every byte of text in tokens. The text mcpd gives for a listing, a tree and a
 * search must be at most 1.5 times what the official filesystem server gives for the same work,
 * on the same tree, both over stdio (the structured content carries the full fields).
 */
const OFFICIAL = join(REPO, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const MAX_RATIO = 1.5;

type Result = { content: { type: string; text?: string }[] };
const textBytes = (result: Result) =>
  result.content.reduce((sum, block) => sum + Buffer.byteLength(block.text ?? ''), 0);

describe('text output against the official filesystem server', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let official: V1Client;
  let mcpd: V1Client;
  let root: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('mcpd-output-size-'));
    root = join(dir, 'tree');
    const tree = root;
    // Deep and wide, names with spaces and accents, nothing either server hides.
    for (let a = 0; a < 6; a++) {
      for (let b = 0; b < 5; b++) {
        const sub = join(tree, `module ${a}`, `café-${b}`, 'src');
        await mkdir(sub, { recursive: true });
        for (let c = 0; c < 8; c++) await writeFile(join(sub, `handler_${c}.md`), `# ${a}.${b}.${c}\n`);
        await writeFile(join(tree, `module ${a}`, `café-${b}`, 'README.txt'), 'readme\n');
      }
    }
    await mkdir(join(tree, 'wide'));
    for (let i = 0; i < 300; i++) await writeFile(join(tree, 'wide', `entry-${String(i).padStart(4, '0')}.txt`), '');
    const config = join(dir, 'mcpd.yaml');
    await writeFile(config, `roots: [{ name: Tree, uri: ${JSON.stringify(tree)} }]\n`);
    official = await v1StdioClient(process.execPath, [OFFICIAL, tree]);
    mcpd = await v1StdioClient(process.execPath, [
      MCPD_BIN,
      'stdio',
      '--config',
      config,
      '--log-level',
      'silent',
      '--audit-file',
      join(dir, 'audit.log'),
    ]);
  });
  afterAll(async () => {
    await official?.close();
    await mcpd?.close();
    await cleanup?.();
  });

  const tree = () => root;
  const compare = async (
    officialCall: { name: string; arguments: Record<string, unknown> },
    mcpdCall: { name: string; arguments: Record<string, unknown> },
    sameEntries: (officialText: string, mcpdResult: Result & { structuredContent?: unknown }) => void,
  ) => {
    const theirs = (await official.callTool(officialCall)) as Result;
    const ours = (await mcpd.callTool(mcpdCall)) as Result & { structuredContent?: unknown; isError?: boolean };
    expect(ours.isError, JSON.stringify(ours).slice(0, 300)).toBeFalsy();
    sameEntries(theirs.content[0]?.text ?? '', ours);
    const ratio = textBytes(ours) / textBytes(theirs);
    expect(ratio, `${mcpdCall.name}: ${textBytes(ours)} bytes against ${textBytes(theirs)}`).toBeLessThanOrEqual(
      MAX_RATIO,
    );
    return ratio;
  };

  it('a listing of 300 entries', async () => {
    await compare(
      { name: 'list_directory', arguments: { path: join(tree(), 'wide') } },
      { name: 'list_directory', arguments: { path: 'wide', limit: 1000 } },
      (theirs, ours) => {
        expect(theirs.split('\n')).toHaveLength(300);
        expect((ours.structuredContent as { entries: unknown[] }).entries).toHaveLength(300);
      },
    );
  });

  it('a tree of the whole root', async () => {
    await compare(
      { name: 'directory_tree', arguments: { path: tree() } },
      { name: 'directory_tree', arguments: { path: '', maxDepth: 10, maxEntries: 10_000 } },
      (theirs, ours) => {
        const count = (nodes: { children?: unknown[] }[]): number =>
          nodes.reduce((sum, node) => sum + 1 + (node.children ? count(node.children as never) : 0), 0);
        expect((ours.structuredContent as { entries: number }).entries).toBe(count(JSON.parse(theirs)));
      },
    );
  });

  it('a search with many hits', async () => {
    await compare(
      { name: 'search_files', arguments: { path: tree(), pattern: '**/*.md' } },
      { name: 'search_files', arguments: { pattern: '*.md', limit: 10_000 } },
      (theirs, ours) => {
        expect(theirs.split('\n')).toHaveLength(240);
        expect((ours.structuredContent as { matches: unknown[] }).matches).toHaveLength(240);
      },
    );
  });
});
