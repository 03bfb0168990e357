import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * read_multiple_files reads several files at once, and hands its byte budget out in request
 * order: which files fit must be what reading them one by one gives, whichever read ends first.
 */
describe('read_multiple_files under a shared budget', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let client: Client;

  // Sizes chosen so that the budget (250 bytes, 100 a file) decides several files in the middle.
  const files: [string, number | undefined][] = [
    ['f0.txt', 100],
    ['f1.txt', 90],
    ['f2.txt', 80], // 60 left: refused
    ['f3.txt', 5],
    ['f4.txt', 200], // above the per-file limit
    ['f5.txt', 30],
    ['missing.txt', undefined],
    ['f7.txt', 10],
    ['f8.txt', 20], // 15 left: refused
    ['f9.txt', 15], // exactly what is left
    ['f10.txt', 1], // nothing left
  ];
  const expected = [
    'ok 100',
    'ok 90',
    'TOO_LARGE',
    'ok 5',
    'TOO_LARGE',
    'ok 30',
    'NOT_FOUND_OR_DENIED',
    'ok 10',
    'TOO_LARGE',
    'ok 15',
    'TOO_LARGE',
  ];

  beforeAll(async () => {
    demo = await demoCopy();
    await mkdir(join(demo.project, 'batch'));
    for (const [name, size] of files) {
      if (size !== undefined) await writeFile(join(demo.project, 'batch', name), 'x'.repeat(size));
    }
    server = await startServer(
      await demo.configWith('batch.yaml', 'limits:\n  maxReadBytes: 100\n  maxBatchBytes: 250\n  maxBatchFiles: 20\n'),
    );
    client = await modernHttpClient(server.url);
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await demo?.cleanup();
  });

  it('admits files in request order, the same answer every time, one audit record per file', async () => {
    const paths = files.map(([name]) => `batch/${name}`);
    for (let round = 0; round < 20; round++) {
      const result = (await client.callTool({ name: 'read_multiple_files', arguments: { paths } })) as {
        content: { type: string; text?: string }[];
        isError?: boolean;
      };
      expect(result.isError).toBeFalsy();
      const outcomes: string[] = [];
      let i = 0;
      while (i < result.content.length) {
        const metadata = JSON.parse(result.content[i]?.text ?? '') as {
          index: number;
          ok: boolean;
          size?: number;
          error?: { code: string };
        };
        expect(metadata.index).toBe(outcomes.length);
        if (metadata.ok) {
          expect(result.content[i + 1]?.text).toBe('x'.repeat(metadata.size ?? -1));
          outcomes.push(`ok ${metadata.size}`);
          i += 2;
        } else {
          outcomes.push(metadata.error?.code ?? 'no code');
          i += 1;
        }
      }
      expect(outcomes).toEqual(expected);
    }
    const all = 20 * files.length;
    await waitForAudit(server.auditFile, (record) => record.tool === 'read_multiple_files', all);
    const records = (await readAudit(server.auditFile)).filter((record) => record.tool === 'read_multiple_files');
    expect(records).toHaveLength(all);
  });
});
