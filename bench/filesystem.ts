/**
 * mcpd against the official MCP filesystem server (@modelcontextprotocol/server-filesystem) and
 * against machine anchors (find, fd, cat, a bare readdir or stat, an empty node process), side by
 * side in one run, on one generated tree (bench/fs/generate.ts). Both servers run over stdio,
 * driven by the same lean client (bench/fs/client.ts), each with its own tool names and
 * arguments, asked for the same work: every answer is checked (the listing has 1,000 entries on
 * both, the trees and searches as many entries as the tree holds) before and while it is timed.
 *
 * mcpd caches directory listings across calls (keyed by each directory's identity and change
 * time), so a second search in the same process is not the same work as the first. The listing,
 * tree and search rows therefore run against a long-lived mcpd with that cache off
 * and its search index off (`limits.listingCacheEntries: 0`, `limits.searchIndexMaxEntries: 0`):
 * every call reads every directory, as the official server does. Extra rows time the same calls in a second long-lived mcpd with the cache on (its
 * default), after one untimed call has filled it. Both mcpd processes and the official server are
 * warmed by the untimed round, so no row pays for a cold JIT.
 *
 * Method: page cache warmed first, one untimed round, then BENCH_ROUNDS (default 5) rounds with
 * every operation in turn, the order of official / mcpd / anchor rotated each round; medians.
 * BENCH_FS_FILES (default 100,000) sets the tree size. The tree, configs and audit log live in a
 * mcpd-bench-fs-* directory under the system's temp directory, removed at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { findFd, residentBytes, runCommand } from './fs/anchors.js';
import { StdioClient, type ToolAnswer } from './fs/client.js';
import { type GeneratedFile, type GeneratedTree, generateTree, isExcludedByMcpd, WIDE_ENTRIES } from './fs/generate.js';
import { HttpMcpd } from './fs/http.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const BIN = here('../dist/main.js');
const OFFICIAL_PACKAGE = here('../node_modules/@modelcontextprotocol/server-filesystem');
const OFFICIAL = join(OFFICIAL_PACKAGE, 'dist/index.js');
const FILES = Number(process.env.BENCH_FS_FILES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Files read at once while warming the page cache. */
const WARM_CONCURRENCY = 32;
/** mcpd does not cache a directory changed within its 2 s racy window; the tree must be older. */
const SETTLE_MS = 2500;
/** Larger than anything the tree holds: no call of the benchmark is cut short by a limit. */
const UNBOUNDED = 10_000_000;

/** The search rows: the same names, in each tool's own pattern language. */
const SEARCHES = {
  few: { ext: 'lock', official: '**/*.lock', mcpd: '*.lock', fd: '*.lock' },
  many: { ext: 'md', official: '**/*.md', mcpd: '*.md', fd: '*.md' },
} as const;

type Runner = () => Promise<number>;

interface Row {
  readonly label: string;
  readonly official?: Runner;
  readonly mcpd: Runner;
  readonly anchor?: { readonly name: string; readonly run: Runner };
  /** A row whose official and anchor samples this one reuses (same operation, only mcpd differs). */
  readonly sameAs?: string;
  /**
   * Calls per sample for operations of a few milliseconds: the sample is their median, so one
   * garbage collection left over from the row before (a 50 MiB answer) does not decide it.
   */
  readonly repeat?: number;
}

/** Calls per sample of the millisecond rows. */
const QUICK_REPEAT = 9;

async function sample(run: Runner, times: number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < times; i++) values.push(await run());
  return median(values);
}

/** Bytes of text content (what a model reads) and of structuredContent, per server, for one answer. */
interface AnswerBytes {
  official?: { text: number; structured: number };
  mcpd?: { text: number; structured: number };
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const textOf = (answer: ToolAnswer, index = 0): string => {
  const block = answer.result.content?.[index];
  if (block?.type !== 'text' || typeof block.text !== 'string') throw new Error(`no text block at ${index}`);
  return block.text;
};

const bytesOf = (answer: ToolAnswer) => ({
  text: (answer.result.content ?? []).reduce((sum, block) => sum + Buffer.byteLength(block.text ?? ''), 0),
  structured: answer.result.structuredContent ? Buffer.byteLength(JSON.stringify(answer.result.structuredContent)) : 0,
});

function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(`wrong answer: ${what}`);
}

/** Nodes of the official server's directory_tree JSON. */
function countNodes(nodes: readonly { children?: unknown[] }[]): number {
  return nodes.reduce((sum, node) => sum + 1 + (node.children ? countNodes(node.children as never) : 0), 0);
}

function mcpdConfig(tree: GeneratedTree, cache: boolean): string {
  return [
    `roots: [{ name: Tree, uri: ${JSON.stringify(tree.root)} }]`,
    'accessPolicy: { read: ["**/*"], write: [] }',
    // Raised so that mcpd does the same work as the official server, which has no limits: whole
    // listings, trees and searches in one answer, the 50 MiB file in one read, 100 files a batch.
    'limits:',
    `  maxReadBytes: ${64 * 1024 * 1024}`,
    `  maxBatchBytes: ${64 * 1024 * 1024}`,
    `  maxResultBytes: ${512 * 1024 * 1024}`,
    '  maxBatchFiles: 1000',
    `  listPageSize: ${UNBOUNDED}`,
    `  maxListPageSize: ${UNBOUNDED}`,
    '  treeMaxDepth: 64',
    `  treeMaxEntries: ${UNBOUNDED}`,
    `  treeHardMaxEntries: ${UNBOUNDED}`,
    `  searchMaxResults: ${UNBOUNDED}`,
    `  searchHardMaxResults: ${UNBOUNDED}`,
    `  walkMaxEntries: ${UNBOUNDED}`,
    `  maxDirectoryEntries: ${UNBOUNDED}`,
    '  toolTimeoutMs: 600000',
    '  rateLimit: { perSecond: 1000000, burst: 1000000 }',
    ...(cache ? [] : ['  listingCacheEntries: 0', '  searchIndexMaxEntries: 0']),
    '',
  ].join('\n');
}

/** Every file read once and every directory listed once (by find), so no row pays for the disk. */
async function warmPageCache(tree: GeneratedTree): Promise<void> {
  await runCommand('find', [tree.root]);
  let next = 0;
  const worker = async () => {
    while (next < tree.files.length) {
      const file = tree.files[next++] as GeneratedFile;
      await readFile(join(tree.root, file.relPath));
    }
  };
  await Promise.all(Array.from({ length: WARM_CONCURRENCY }, worker));
}

const formatMs = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
const formatRatio = (ratio: number) => (ratio < 100 ? ratio.toFixed(2) : ratio.toFixed(0));
const formatMb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const formatBytes = (bytes: number) =>
  bytes < 10_000 ? `${bytes} B` : bytes < 10_000_000 ? `${(bytes / 1024).toFixed(0)} KiB` : formatMb(bytes);

export async function filesystem(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mcpd-bench-fs-'));
  const clients: { close(): Promise<unknown> }[] = [];
  try {
    const generationStarted = performance.now();
    const tree = await generateTree(join(work, 'tree'), { files: FILES });
    const generatedAt = performance.now();
    const generationSeconds = (generatedAt - generationStarted) / 1000;
    await warmPageCache(tree);
    const settle = SETTLE_MS - (performance.now() - generatedAt);
    if (settle > 0) await new Promise((resolve) => setTimeout(resolve, settle));

    const mcpdArgs = (cache: boolean) => {
      const config = join(work, cache ? 'mcpd.yaml' : 'mcpd-no-cache.yaml');
      writeFileSync(config, mcpdConfig(tree, cache));
      return [BIN, 'stdio', '--config', config, '--log-level', 'silent', '--audit-file', join(work, 'audit.log')];
    };
    const officialArgs = [OFFICIAL, tree.root];
    const officialVersion = (
      JSON.parse(readFileSync(join(OFFICIAL_PACKAGE, 'package.json'), 'utf8')) as { version: string }
    ).version;
    const fd = findFd();

    const official = await StdioClient.connect('official', process.execPath, officialArgs);
    clients.push(official);
    const cachedArgs = mcpdArgs(true);
    const mcpd = await StdioClient.connect('mcpd', process.execPath, cachedArgs);
    clients.push(mcpd);
    const uncached = await StdioClient.connect('mcpd (no cache)', process.execPath, mcpdArgs(false));
    clients.push(uncached);
    // The same configuration served over HTTP, for the big read (the official server has no HTTP).
    const overHttp = await HttpMcpd.start([BIN, 'serve', '--config', join(work, 'mcpd.yaml')]);
    clients.push(overHttp);

    const abs = (relPath: string) => (relPath === '' ? tree.root : join(tree.root, relPath));
    const under = (dir: string) => {
      const inside = (relPath: string) => dir === '' || relPath.startsWith(`${dir}/`);
      const files = tree.files.filter((file) => inside(file.relPath));
      const entries = files.length + tree.dirs.filter(inside).length;
      const hidden = files.filter((file) => isExcludedByMcpd(file.relPath)).length;
      return { entries, hidden };
    };
    const hits = (ext: string) => tree.files.filter((file) => file.relPath.endsWith(`.${ext}`)).length;

    // 100 small files spread over the tree (none excluded, none in warmup/), the batch-read row.
    const eligible = tree.files.filter(
      (file) => file.size <= 20 * 1024 && !isExcludedByMcpd(file.relPath) && !file.relPath.startsWith('warmup/'),
    );
    const batch = Array.from(
      { length: 100 },
      (_, i) => eligible[Math.floor((i * eligible.length) / 100)] as GeneratedFile,
    );
    const batchBytes = batch.reduce((sum, file) => sum + file.size, 0);
    const infoFile = batch[0] as GeneratedFile;

    const answerBytes = new Map<string, AnswerBytes>();
    const record = (label: string, server: 'official' | 'mcpd', answer: ToolAnswer) => {
      answerBytes.set(label, { ...answerBytes.get(label), [server]: bytesOf(answer) });
    };

    const listRow = (): Row => {
      const label = `list_directory, ${WIDE_ENTRIES.toLocaleString('en')} entries`;
      return {
        label,
        repeat: QUICK_REPEAT,
        official: async () => {
          const answer = await official.call('list_directory', { path: abs(tree.wideDir) });
          expect(textOf(answer).split('\n').length === WIDE_ENTRIES, 'official listing size');
          record(label, 'official', answer);
          return answer.ms;
        },
        mcpd: async () => {
          const answer = await uncached.call('list_directory', { path: tree.wideDir, limit: UNBOUNDED });
          const value = answer.result.structuredContent as { entries: unknown[]; total: number; nextCursor?: string };
          expect(value.entries.length === WIDE_ENTRIES && value.total === WIDE_ENTRIES, 'mcpd listing size');
          record(label, 'mcpd', answer);
          return answer.ms;
        },
        anchor: {
          name: 'node readdir+format',
          run: async () => {
            const started = performance.now();
            const entries = await readdir(abs(tree.wideDir), { withFileTypes: true });
            const text = entries.map((entry) => `${entry.isDirectory() ? '[DIR]' : '[FILE]'} ${entry.name}`).join('\n');
            const ms = performance.now() - started;
            expect(text.split('\n').length === WIDE_ENTRIES, 'readdir size');
            return ms;
          },
        },
      };
    };

    const treeRow = (label: string, dir: string): Row => {
      const expected = under(dir);
      return {
        label,
        official: async () => {
          const answer = await official.call('directory_tree', { path: abs(dir) });
          expect(countNodes(JSON.parse(textOf(answer))) === expected.entries, `official ${label} entries`);
          record(label, 'official', answer);
          return answer.ms;
        },
        mcpd: async () => {
          const answer = await uncached.call('directory_tree', { path: dir, maxDepth: 64, maxEntries: UNBOUNDED });
          const value = answer.result.structuredContent as { entries: number; truncated: boolean };
          expect(!value.truncated && value.entries === expected.entries - expected.hidden, `mcpd ${label} entries`);
          record(label, 'mcpd', answer);
          return answer.ms;
        },
        anchor: {
          name: 'find',
          run: async () => {
            const run = await runCommand('find', [abs(dir)]);
            expect(run.lines === expected.entries + 1, `find ${label} entries`);
            return run.ms;
          },
        },
      };
    };

    const searchRows = (kind: keyof typeof SEARCHES): Row[] => {
      const search = SEARCHES[kind];
      const expected = hits(search.ext);
      expect(expected > 0, `the tree has ${search.ext} files`);
      const label = `search_files, ${kind} hits (${expected.toLocaleString('en')} *.${search.ext})`;
      const args = { pattern: search.mcpd, limit: UNBOUNDED };
      const checkMcpd = (answer: ToolAnswer, which: string) => {
        const value = answer.result.structuredContent as {
          matches: unknown[];
          truncated: boolean;
          nextCursor?: string;
        };
        expect(!value.truncated && !value.nextCursor && value.matches.length === expected, `${which} ${label}`);
      };
      return [
        {
          label,
          official: async () => {
            const answer = await official.call('search_files', { path: tree.root, pattern: search.official });
            expect(textOf(answer).split('\n').length === expected, `official ${label}`);
            record(label, 'official', answer);
            return answer.ms;
          },
          mcpd: async () => {
            const answer = await uncached.call('search_files', args);
            checkMcpd(answer, 'mcpd');
            record(label, 'mcpd', answer);
            return answer.ms;
          },
          ...(fd.command
            ? {
                anchor: {
                  name: `fd (${cpus().length} threads)`,
                  run: async () => {
                    const run = await runCommand(fd.command as string, [
                      '--hidden',
                      '--no-ignore',
                      '--color',
                      'never',
                      '--glob',
                      search.fd,
                      tree.root,
                    ]);
                    expect(run.lines === expected, `fd ${label}`);
                    return run.ms;
                  },
                },
              }
            : {}),
        },
        {
          label: `${label}, repeated: mcpd warm cache`,
          sameAs: label,
          // Nine in a row: the first of them checks the index again (it is older than its bound
          // by then), the median is a search from an index within it.
          repeat: QUICK_REPEAT,
          mcpd: async () => {
            const answer = await mcpd.call('search_files', args);
            checkMcpd(answer, 'mcpd warm');
            return answer.ms;
          },
        },
      ];
    };

    const warmRow = (
      row: Row,
      tool: string,
      args: Record<string, unknown>,
      check: (answer: ToolAnswer) => void,
    ): Row => ({
      label: `${row.label}, repeated: mcpd warm cache`,
      sameAs: row.label,
      ...(row.repeat ? { repeat: row.repeat } : {}),
      mcpd: async () => {
        const answer = await mcpd.call(tool, args);
        check(answer);
        return answer.ms;
      },
    });
    const list = listRow();
    const subtreeLabel = `directory_tree, subtree (${under(tree.subtreeDir).entries.toLocaleString('en')} entries)`;
    const subtree = treeRow(subtreeLabel, tree.subtreeDir);
    const rows: Row[] = [
      list,
      warmRow(list, 'list_directory', { path: tree.wideDir, limit: UNBOUNDED }, (answer) =>
        expect((answer.result.structuredContent as { total: number }).total === WIDE_ENTRIES, 'mcpd warm listing'),
      ),
      subtree,
      warmRow(subtree, 'directory_tree', { path: tree.subtreeDir, maxDepth: 64, maxEntries: UNBOUNDED }, (answer) =>
        expect(!(answer.result.structuredContent as { truncated: boolean }).truncated, 'mcpd warm tree'),
      ),
      treeRow(`directory_tree, whole tree (${under('').entries.toLocaleString('en')} entries)`, ''),
      ...searchRows('few'),
      ...searchRows('many'),
      {
        label: 'read_multiple_files, 100 small files',
        repeat: QUICK_REPEAT,
        official: async () => {
          const answer = await official.call('read_multiple_files', { paths: batch.map((file) => abs(file.relPath)) });
          const text = textOf(answer);
          expect(text.split('\n---\n').length === 100 && !text.includes(': Error - '), 'official batch');
          return answer.ms;
        },
        mcpd: async () => {
          const answer = await mcpd.call('read_multiple_files', { paths: batch.map((file) => file.relPath) });
          const blocks = answer.result.content ?? [];
          const ok = blocks.filter((_, i) => i % 2 === 0 && (JSON.parse(textOf(answer, i)) as { ok: boolean }).ok);
          const bytes = blocks.reduce((sum, block, i) => sum + (i % 2 === 1 ? (block.text ?? '').length : 0), 0);
          expect(blocks.length === 200 && ok.length === 100 && bytes === batchBytes, 'mcpd batch');
          return answer.ms;
        },
        anchor: {
          name: 'cat',
          run: async () => {
            const run = await runCommand(
              'cat',
              batch.map((file) => abs(file.relPath)),
            );
            expect(run.bytes === batchBytes, 'cat batch');
            return run.ms;
          },
        },
      },
      {
        label: `read a ${tree.bigFileBytes / 2 ** 20} MiB file whole`,
        official: async () => {
          const answer = await official.call('read_text_file', { path: abs(tree.bigFile) });
          expect(textOf(answer).length === tree.bigFileBytes, 'official big read');
          return answer.ms;
        },
        mcpd: async () => {
          const answer = await mcpd.call('read_file', { path: tree.bigFile });
          const metadata = JSON.parse(textOf(answer, 0)) as { complete: boolean };
          expect(metadata.complete && textOf(answer, 1).length === tree.bigFileBytes, 'mcpd big read');
          return answer.ms;
        },
        anchor: {
          name: 'cat',
          run: async () => {
            const run = await runCommand('cat', [abs(tree.bigFile)]);
            expect(run.bytes === tree.bigFileBytes, 'cat big read');
            return run.ms;
          },
        },
      },
      {
        label: `read a ${tree.bigFileBytes / 2 ** 20} MiB file whole, over HTTP`,
        sameAs: `read a ${tree.bigFileBytes / 2 ** 20} MiB file whole`,
        mcpd: async () => {
          const { ms, body } = await overHttp.call('read_file', { path: tree.bigFile });
          const answer = JSON.parse(body) as { result: { content: { text: string }[] } };
          const [metadata, contents] = answer.result.content;
          expect(
            (JSON.parse(metadata?.text ?? '{}') as { complete?: boolean }).complete === true &&
              contents?.text.length === tree.bigFileBytes,
            'mcpd big read over HTTP',
          );
          return ms;
        },
      },
      {
        label: 'get_file_info',
        repeat: QUICK_REPEAT,
        official: async () => {
          const answer = await official.call('get_file_info', { path: abs(infoFile.relPath) });
          expect(textOf(answer).includes(`size: ${infoFile.size}\n`), 'official info');
          return answer.ms;
        },
        mcpd: async () => {
          const answer = await mcpd.call('get_file_info', { path: infoFile.relPath });
          expect((answer.result.structuredContent as { size: number }).size === infoFile.size, 'mcpd info');
          return answer.ms;
        },
        anchor: {
          name: 'node stat',
          run: async () => {
            const started = performance.now();
            const stats = await stat(abs(infoFile.relPath));
            const ms = performance.now() - started;
            expect(stats.size === infoFile.size, 'stat');
            return ms;
          },
        },
      },
      {
        label: 'start: spawn, initialize, tools/list, exit',
        official: () => startAndStop('official', officialArgs),
        mcpd: () => startAndStop('mcpd', cachedArgs),
        anchor: {
          name: 'node -e 0',
          run: async () => (await runCommand(process.execPath, ['-e', '0'])).ms,
        },
      },
    ];

    // Untimed: checks every answer once, compiles the code paths, fills mcpd's cache for the warm rows.
    for (const row of rows) {
      await row.official?.();
      await row.mcpd();
      await row.anchor?.run();
    }
    // The long-lived mcpd does the listing and tree work once too, so its memory at the end reflects
    // the same work as the official server's (whose every call ran in its one process).
    await mcpd.call('list_directory', { path: tree.wideDir, limit: UNBOUNDED });
    await mcpd.call('directory_tree', { path: '', maxDepth: 64, maxEntries: UNBOUNDED });

    const samples = new Map<string, { official: number[]; mcpd: number[]; anchor: number[] }>(
      rows.map((row) => [row.label, { official: [], mcpd: [], anchor: [] }]),
    );
    for (let round = 0; round < ROUNDS; round++) {
      process.stdout.write(`filesystem: round ${round + 1} of ${ROUNDS}\n`);
      for (const row of rows) {
        const into = samples.get(row.label) as { official: number[]; mcpd: number[]; anchor: number[] };
        const turns: [number[], Runner | undefined][] = [
          [into.official, row.official],
          [into.mcpd, row.mcpd],
          [into.anchor, row.anchor?.run],
        ];
        // Rotated each round, so whatever the first or last of three pays falls on each in turn.
        for (let i = 0; i < turns.length; i++) {
          const [list, run] = turns[(i + round) % turns.length] as [number[], Runner | undefined];
          if (run) list.push(await sample(run, row.repeat ?? 1));
        }
      }
    }

    // Idle memory after the run: a moment's rest, then the resident set of each long-lived server.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const rss = { official: residentBytes(official.pid), mcpd: residentBytes(mcpd.pid), node: await idleNodeRss() };

    printReport({
      tree,
      generationSeconds,
      rows,
      samples,
      rss,
      answerBytes,
      officialVersion,
      fdNote: fd.note,
    });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    rmSync(work, { recursive: true, force: true });
  }
}

/** A server from spawn to exit: the handshake, a tools/list, end of input. */
async function startAndStop(name: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  const client = await StdioClient.connect(name, process.execPath, args);
  const { result } = await client.request('tools/list', {});
  await client.close();
  const ms = performance.now() - started;
  expect(((result as { tools: unknown[] }).tools?.length ?? 0) > 0, `${name} lists tools`);
  return ms;
}

/** The resident set of a node process doing nothing: what any node server starts from. */
async function idleNodeRss(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return residentBytes(child.pid as number);
  } finally {
    child.kill('SIGTERM');
  }
}

function printReport(report: {
  tree: GeneratedTree;
  generationSeconds: number;
  rows: readonly Row[];
  samples: Map<string, { official: number[]; mcpd: number[]; anchor: number[] }>;
  rss: { official: number; mcpd: number; node: number };
  answerBytes: Map<string, AnswerBytes>;
  officialVersion: string;
  fdNote: string | undefined;
}): void {
  const { tree, rows, samples, rss } = report;
  const cpu = cpus();
  const machine =
    `${cpu.length} cores, ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `${type()} ${release()}, node ${process.version}`;
  const out: string[] = [
    '',
    `filesystem: mcpd vs @modelcontextprotocol/server-filesystem ${report.officialVersion}, over stdio; ` +
      `medians of ${ROUNDS} rotated rounds (${new Date().toISOString().slice(0, 10)})`,
    `machine: ${machine}`,
    `tree: ${tree.files.length.toLocaleString('en')} files, ${tree.dirs.length.toLocaleString('en')} directories, ` +
      `${formatMb(tree.bytes)}, generated in ${report.generationSeconds.toFixed(1)} s`,
    '',
    '| operation | official server | mcpd | anchor | mcpd x anchor | mcpd x official |',
    '| --- | ---: | ---: | --- | ---: | ---: |',
  ];
  for (const row of rows) {
    const own = samples.get(row.label) as { official: number[]; mcpd: number[]; anchor: number[] };
    const shared = row.sameAs ? (samples.get(row.sameAs) as typeof own) : own;
    const anchorRow = row.sameAs ? rows.find((other) => other.label === row.sameAs) : row;
    const mcpdMs = median(own.mcpd);
    const officialMs = shared.official.length > 0 ? median(shared.official) : undefined;
    const anchorMs = shared.anchor.length > 0 ? median(shared.anchor) : undefined;
    out.push(
      `| ${row.label} | ${officialMs === undefined ? '' : formatMs(officialMs)} | ${formatMs(mcpdMs)} | ` +
        `${anchorMs === undefined ? 'none' : `${anchorRow?.anchor?.name}: ${formatMs(anchorMs)}`} | ` +
        `${anchorMs === undefined ? '' : formatRatio(mcpdMs / anchorMs)} | ` +
        `${officialMs === undefined ? '' : formatRatio(mcpdMs / officialMs)} |`,
    );
  }
  out.push(
    `| idle RSS after the run | ${formatMb(rss.official)} | ${formatMb(rss.mcpd)} | idle node: ${formatMb(rss.node)} | ` +
      `${formatRatio(rss.mcpd / rss.node)} | ${formatRatio(rss.mcpd / rss.official)} |`,
    '',
    'Ratios divide mcpd by the other column: above 1 is slower (or larger) than it.',
    '',
    '| answer | official text | official structuredContent | mcpd text | mcpd structuredContent | mcpd text x official text |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const [label, bytes] of report.answerBytes) {
    if (!bytes.official || !bytes.mcpd) continue;
    out.push(
      `| ${label} | ${formatBytes(bytes.official.text)} | ${formatBytes(bytes.official.structured)} | ` +
        `${formatBytes(bytes.mcpd.text)} | ${formatBytes(bytes.mcpd.structured)} | ` +
        `${formatRatio(bytes.mcpd.text / bytes.official.text)} |`,
    );
  }
  out.push(
    '',
    'Text is what a model reads from the text content; clients that read structuredContent when present ' +
      "(Claude Code does) get mcpd's structured value instead, with every field (URIs, sizes, times).",
    `Searches: official "${SEARCHES.few.official}" and "${SEARCHES.many.official}" from the tree's root; ` +
      `mcpd "${SEARCHES.few.mcpd}" and "${SEARCHES.many.mcpd}" (names at any depth); ` +
      `fd --hidden --no-ignore --glob "${SEARCHES.few.fd}" / "${SEARCHES.many.fd}".`,
    "Trees and searches: mcpd hides the tree's .env and *.key files (built-in excludes), the official server lists them.",
    'mcpd listing, tree and search rows: a long-lived mcpd with its listing cache and search index off; ' +
      '"warm cache" rows: a second one with both on (defaults), filled by the untimed round; ' +
      'its search index is checked again (one lstat per directory) when older than limits.searchIndexTtlMs.',
  );
  if (report.fdNote) out.push(`No fd anchor: ${report.fdNote}.`);
  process.stdout.write(`${out.join('\n')}\n`);
}
