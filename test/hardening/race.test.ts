import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.js';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { errorCode } from '../helpers/clients.js';
import { prng } from '../helpers/random.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { type Swapper, type SwapReport, snapshotTree, startSwapper } from '../helpers/swapper.js';
import { tempDir, writeTree } from '../helpers/workspace.js';

/*
 * The race suite. A local process (python3, renameat2 RENAME_EXCHANGE in a tight loop) keeps
 * exchanging a real directory inside the root with a symlink, also inside the root, that points at
 * a directory outside it, while thousands of tool calls run against paths under both names with
 * bounded concurrency. Every instant each name is one or the other, so whatever a call resolves,
 * opens or names may change between any two of its steps.
 *
 *   <tmp>/root             root "Race": read *.md *.txt, write swap/**, swaplink/**, moved/**
 *   <tmp>/root/swap        the real directory (swapped)
 *   <tmp>/root/swaplink    symlink -> <tmp>/outside (swapped)
 *   <tmp>/root/moved       where moves come from and go to
 *   <tmp>/outside          decoys under the names the calls use, unique canary names, a stale
 *                          temp file; every file holds MARKER
 *
 * Invariants: the outside tree is unchanged to the byte (and its directories' times, so nothing
 * was even created and removed there); no answer holds MARKER, a canary name or the outside path;
 * every call has exactly the audit records its path decisions make, and every allowed record
 * names a root-relative path under the swapped or moved directories.
 */

const OPS = Number(process.env.MCPD_RACE_OPS ?? 10_000);
const CONCURRENCY = 16;
/** Names per kind (f0..f7.md, w0..w7.md, ...): few enough that calls collide on them. */
const POOL = 8;
const SEED = Number(process.env.MCPD_RACE_SEED ?? 20_260_728);

const MARKER = `OUTSIDE-MARKER-${randomBytes(8).toString('hex')}`;
const CANARY = `canary-${randomBytes(6).toString('hex')}`;
const STALE_TEMP = `.mcpd-tmp-${CANARY}`;

interface Call {
  readonly tool: string;
  readonly args: Record<string, unknown>;
  /** Audit records its path decisions make. */
  readonly records: number;
}

type Answer = { isError?: boolean; _meta?: Record<string, unknown> };

const codeOf = errorCode;

describe('a directory swapped for a symlink to outside while calls run', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let root: string;
  let outside: string;
  let server: TestServer | undefined;
  let swapper: Swapper | undefined;
  let before: Record<string, string>;

  beforeAll(async () => {
    tmp = await tempDir('mcpd-race-');
    root = join(tmp.dir, 'root');
    outside = join(tmp.dir, 'outside');
    const inside: Record<string, string> = {
      'README.md': '# race root\n',
      'swap/sub/inner.md': 'inside inner\n',
      'swap/sub/deeper/x.md': 'inside deeper\n',
      'swap/notes.txt': 'inside notes\n',
    };
    const decoys: Record<string, string> = {
      'sub/inner.md': `${MARKER} inner\n`,
      'sub/deeper/x.md': `${MARKER} deeper\n`,
      'notes.txt': `${MARKER} notes\n`,
      [STALE_TEMP]: `${MARKER} a stale temp file: a sweep that followed the link would remove it\n`,
    };
    for (let k = 0; k < POOL; k++) {
      inside[`swap/f${k}.md`] = `inside f${k}\n`;
      inside[`swap/e${k}.md`] = 'alpha\n';
      inside[`moved/m${k}.md`] = `inside m${k}\n`;
      decoys[`f${k}.md`] = `${MARKER} f${k}\n`;
      decoys[`e${k}.md`] = `alpha beta ${MARKER} e${k}\n`;
      decoys[`w${k}.md`] = `${MARKER} w${k}\n`;
      decoys[`m${k}.md`] = `${MARKER} m${k}\n`;
      decoys[`${CANARY}-${k}.md`] = `${MARKER} canary ${k}\n`;
    }
    await writeTree(root, inside);
    await writeTree(outside, decoys);
    for (let k = 0; k < POOL; k++) await mkdir(join(outside, `x${k}`));
    const old = new Date('2000-01-01T00:00:00Z');
    await utimes(join(outside, STALE_TEMP), old, old);
    await symlink(outside, join(root, 'swaplink'));

    const config = join(tmp.dir, 'race.yaml');
    await writeFile(
      config,
      [
        'accessPolicy:',
        '  read: ["*.md", "*.txt"]',
        '  write: ["swap/**/*", "swaplink/**/*", "moved/**/*"]',
        'roots:',
        '  - { name: Race, uri: ./root }',
        'limits:',
        '  maxConcurrentPerPrincipal: 64',
        '  rateLimit: { perSecond: 1000000, burst: 1000000 }',
        'resources:',
        '  watch: false',
        '',
      ].join('\n'),
    );
    before = await snapshotTree(outside);
    // Swapping from before the server starts: its start-up work (the roots, the sweep of leftover
    // temp files) runs under the race too.
    swapper = await startSwapper(join(root, 'swap'), join(root, 'swaplink'));
    server = await startServer(config);
  });

  afterAll(async () => {
    await swapper?.stop().catch(() => {});
    await server?.close();
    await tmp?.cleanup();
  });

  it(`runs ${OPS} calls under the swap with 0 escapes, and audits each path decision`, async ({ annotate }) => {
    if (!server || !swapper) throw new Error('setup failed');
    const url = server.url;
    const rootUri = pathToFileURL(root).href;
    const random = prng(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const k = () => Math.floor(random() * POOL);

    /** Relative, absolute or file:// URI: the three forms a path may take. */
    const form = (rel: string) => pick([rel, rel, `${root}/${rel}`, `${rootUri}/${rel}`]);

    const makers: (() => Call)[] = [
      () => {
        const base = pick(['swap', 'swaplink']);
        const path = form(pick([`${base}/f${k()}.md`, `${base}/e${k()}.md`, `${base}/sub/inner.md`]));
        const range = pick([{}, {}, { startLine: 1, endLine: 1 }, { offset: 0, length: 8 }]);
        return { tool: 'read_file', args: { path, ...range }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const paths = [`${base}/f${k()}.md`, `${base}/sub/deeper/x.md`, `moved/m${k()}.md`].map(form);
        return { tool: 'read_multiple_files', args: { paths }, records: paths.length };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        return {
          tool: 'list_directory',
          // With details, every entry is stat'ed through the held directory: the path a swap would attack.
          args: { path: form(pick([base, `${base}/sub`])), details: pick([true, false]) },
          records: 1,
        };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const pattern = pick(['*.md', 'f', 'inner', '**/*', 'canary']);
        return { tool: 'search_files', args: { pattern, path: form(base) }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        return { tool: 'directory_tree', args: { path: form(base), maxDepth: 4 }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        return { tool: 'grep', args: { pattern: '.', path: form(pick([base, `${base}/sub`])) }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const path = form(pick([`${base}/f${k()}.md`, base, `${base}/sub`, `${base}/sub/deeper/x.md`]));
        return { tool: 'get_file_info', args: { path }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const path = form(pick([`${base}/w${k()}.md`, `${base}/w${k()}.md`, `${base}/f${k()}.md`]));
        const createOnly = random() < 0.2;
        return { tool: 'write_file', args: { path, content: `inside write ${random()}\n`, createOnly }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const [oldText, newText] = pick([
          ['alpha', 'beta'],
          ['beta', 'alpha'],
        ]);
        const args = { path: form(`${base}/e${k()}.md`), edits: [{ oldText, newText }], dryRun: random() < 0.3 };
        return { tool: 'edit_file', args, records: 2 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const recursive = random() < 0.5;
        const path = form(recursive ? `${base}/n${k()}/a/b` : `${base}/d${k()}`);
        return { tool: 'create_directory', args: { path, recursive }, records: 1 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const n = k();
        const [source, destination] = pick([
          [`moved/m${n}.md`, `${base}/m${n}.md`],
          [`${base}/m${n}.md`, `moved/m${n}.md`],
          [`${base}/m${n}.md`, `${pick(['swap', 'swaplink'])}/sub/m${n}.md`],
        ]);
        // Files only: a moved directory would add one record per entry it may not carry.
        return { tool: 'move_file', args: { source: form(source), destination: form(destination) }, records: 3 };
      },
      () => {
        const base = pick(['swap', 'swaplink']);
        const n = k();
        const path = form(pick([`${base}/w${n}.md`, `${base}/d${n}`, `${base}/x${n}`, `${base}/n${n}/a/b`]));
        return { tool: 'delete_file', args: { path }, records: 1 };
      },
    ];
    const calls = Array.from({ length: OPS }, () => (pick(makers) as () => Call)());

    const forbidden = [MARKER, CANARY, outside];
    const leaks: string[] = [];
    const badAnswers: string[] = [];
    const requestIds = new Map<string, Call>();
    const tally = new Map<string, Map<string, number>>();
    const seen = { directory: 0, symlink: 0 };
    let next = 0;

    const run = async (index: number, call: Call) => {
      const response = await postModern(
        url,
        'tools/call',
        { name: call.tool, arguments: call.args },
        { id: index, client: 'race' },
      );
      const requestId = response.headers.get('x-request-id');
      const text = await response.clone().text();
      const [message] = await messagesOf(response);
      if (response.status !== 200 || !requestId || !message || !('result' in message)) {
        badAnswers.push(`${call.tool} ${JSON.stringify(call.args)}: HTTP ${response.status} ${text.slice(0, 300)}`);
        return;
      }
      requestIds.set(requestId, call);
      for (const secret of forbidden) {
        if (text.includes(secret)) leaks.push(`${call.tool} ${JSON.stringify(call.args)} -> ${text.slice(0, 500)}`);
      }
      const result = message.result as Answer & { content?: { type: string; text?: string }[] };
      const count = (outcome: string) => {
        const counts = tally.get(call.tool) ?? new Map<string, number>();
        counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
        tally.set(call.tool, counts);
      };
      if (call.tool !== 'read_multiple_files' || result.isError) {
        count(result.isError ? (codeOf(result) ?? 'error') : 'ok');
        return;
      }
      // A batch succeeds as a whole; each of its files has its own outcome, in its metadata block.
      for (const block of result.content ?? []) {
        if (block.type !== 'text' || !block.text?.startsWith('{"index":')) continue;
        const item = JSON.parse(block.text) as { ok: boolean; error?: { code: string } };
        count(item.ok ? 'ok' : (item.error?.code ?? 'error'));
      }
    };

    const worker = async () => {
      while (next < calls.length) {
        const index = next++;
        // Look at the swapped name now and then: the calls must meet both states.
        if (index % 32 === 0) {
          const stats = await lstat(join(root, 'swap'));
          if (stats.isSymbolicLink()) seen.symlink += 1;
          else if (stats.isDirectory()) seen.directory += 1;
        }
        await run(index, calls[index] as Call);
      }
    };

    const started = performance.now();
    let report: SwapReport;
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      report = await swapper.stop();
    }
    const elapsedMs = Math.round(performance.now() - started);

    const outcomes = Object.fromEntries([...tally].map(([tool, counts]) => [tool, Object.fromEntries(counts)]));
    const summary = { calls: calls.length, swaps: report.swaps, seen, elapsedMs, seed: SEED, outcomes };
    await annotate(`race summary: ${JSON.stringify(summary)}`);

    // Not vacuous: the swapper swapped all along, and the calls met both states and both outcomes.
    expect(badAnswers, 'every call got a JSON-RPC result').toEqual([]);
    expect(report.swaps, `swaps (${JSON.stringify(summary)})`).toBeGreaterThan(calls.length);
    expect(seen.directory, 'times the calls saw the real directory').toBeGreaterThan(0);
    expect(seen.symlink, 'times the calls saw the link to outside').toBeGreaterThan(0);
    const okCalls = [...tally.values()].reduce((sum, counts) => sum + (counts.get('ok') ?? 0), 0);
    expect(okCalls, 'calls that succeeded').toBeGreaterThan(0);
    // Each tool, both ways (with fewer calls, a rare success may not come up).
    for (const tool of OPS >= 2000 ? new Set(calls.map((call) => call.tool)) : []) {
      const counts = tally.get(tool);
      expect(counts?.get('ok') ?? 0, `${tool} succeeded sometimes: ${JSON.stringify(outcomes)}`).toBeGreaterThan(0);
      expect(counts?.get('NOT_FOUND_OR_DENIED') ?? 0, `${tool} was refused sometimes`).toBeGreaterThan(0);
    }
    // A race is answered as missing, refused or conflicting, never as a server fault.
    for (const [tool, counts] of tally) {
      expect(counts.get('INTERNAL') ?? 0, `${tool} INTERNAL errors: ${JSON.stringify(outcomes)}`).toBe(0);
    }

    // 0 escapes: nothing outside read, listed, written, moved or deleted.
    expect(leaks, 'answers holding outside contents, names or paths').toEqual([]);
    expect(await snapshotTree(outside), 'the outside tree, to the byte').toEqual(before);
    const temps = (await readdir(outside)).filter((name) => name.startsWith('.mcpd-tmp-'));
    expect(temps, 'temp files outside: only the planted stale one').toEqual([STALE_TEMP]);

    // One audit record per path decision, for every call.
    const expected = calls.reduce((sum, call) => sum + call.records, 0);
    await waitForAudit(server.auditFile, (r) => r.method === 'tools/call', expected, 30_000);
    const records = (await readAudit(server.auditFile)).filter((r) => r.method === 'tools/call');
    expect(records.length, 'tools/call audit records').toBe(expected);
    const byRequest = new Map<string, AuditRecord[]>();
    for (const record of records) byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
    const miscounted: string[] = [];
    for (const [requestId, call] of requestIds) {
      const mine = byRequest.get(requestId) ?? [];
      if (mine.length !== call.records || mine.some((r) => r.tool !== call.tool)) {
        miscounted.push(`${call.tool} ${JSON.stringify(call.args)}: ${JSON.stringify(mine)}`);
      }
    }
    expect(miscounted.slice(0, 5), `${miscounted.length} calls without one record per decision`).toEqual([]);
    expect(byRequest.size, 'audited requests').toBe(requestIds.size);

    const strayAllowed = records.filter(
      (r) =>
        r.decision === 'allow' &&
        (r.root !== 'Race' ||
          typeof r.path !== 'string' ||
          r.path.startsWith('/') ||
          r.path.split('/').includes('..') ||
          !/^(swap|swaplink|moved)(\/|$)/.test(r.path)),
    );
    expect(strayAllowed, 'allowed records outside the swapped and moved directories').toEqual([]);
    const hostPaths = records.filter((r) => typeof r.path === 'string' && r.path.startsWith('/'));
    expect(hostPaths, 'records naming a host path').toEqual([]);
  }, 110_000);
});
