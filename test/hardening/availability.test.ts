import { mkdir, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode, modernHttpClient } from '../helpers/clients.js';
import { runCommand, type ServingProcess, serveMcpd } from '../helpers/process.js';
import { messagesOf, modernRequest, postLegacy } from '../helpers/raw.js';
import {
  followStderr,
  formatPhase,
  interval,
  type MetricSamples,
  type PhaseReport,
  ServerProbe,
  type StderrFollower,
  until,
  watchPhase,
} from '../helpers/stall.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Availability under hostile input. mcpd runs as a child process (the built binary, with the heap
 * deploy/docker/entrypoint.sh gives it in the 512 MiB container of deploy/k8s), so what is measured
 * is the server, not this test runner. Each workload is its own phase: a worker thread polls
 * GET /health back to back (one request at a time) while it runs, and two scrapes of /metrics bracket
 * it. After each phase:
 *
 * - /health answered 200 every time;
 * - mcpd never held its event loop more than STALL_BOUND_MS (below);
 * - its peak resident memory (VmHWM, a peak no sampling can miss) stayed under RSS_BOUND_BYTES.
 *
 * How a stall is measured, robustly on a shared, noisy 2-core machine. The server's own measure is
 * prom-client's nodejs_eventloop_lag_max_seconds (perf_hooks.monitorEventLoopDelay): its histogram is
 * reset by every scrape, so the scrape opening a phase starts a fresh window and the one closing it
 * reads the longest delay inside it (less the monitor's 10 ms timer interval, which every sample
 * holds). It is precise, but it counts every moment the kernel kept the main thread from a CPU: on
 * the machine these tests were written on, other jobs kept it waiting 100-300 ms in a calm second
 * and up to 18 s in a 24 s phase, and the lag reached 300 ms while mcpd had next to nothing to do.
 * Asserted alone, it would fail because of the machine, not mcpd; so would a raw /health latency, and
 * even one less the run-queue waits of both threads (76 ms in a calm second: mcpd's main thread also
 * sleeps on locks its I/O threads hold while the machine keeps those from a CPU). What is asserted is
 * immune to that:
 *
 * 1. For each /health request, the CPU time mcpd's main thread used while it waited
 *    (/proc/PID/task/PID/schedstat, read before and after it by the poller): how long mcpd kept its
 *    event loop busy before answering. Back-to-back polling keeps a request waiting at every moment,
 *    so any stall is inside one. mcpd makes no blocking call on its event loop in serving requests
 *    (no *Sync I/O outside configuration loading), so a stall of its making is CPU time of that
 *    thread (JavaScript, JSON, hashing, garbage collection). The largest must stay under
 *    STALL_BOUND_MS plus the median /health latency of a calm phase measured first.
 * 2. The server's own lag maximum less all of its main thread's run-queue wait over the phase: a
 *    floor of what mcpd held the loop for, even if every moment of waiting fell inside that one
 *    delay. It must stay under STALL_BOUND_MS.
 *
 * Every message shows all of it (raw latencies, lag, waits, CPU), so a failure says whether mcpd or
 * the machine held the loop. The figures of each phase go to $MCPD_AVAILABILITY_REPORT if set.
 */
const STALL_BOUND_MS = 50;
/**
 * 400 MB: below the 460 MB (90% of the 512 MiB limit of deploy/k8s) at which McpdMemoryNearLimit
 * fires, with the old-space cap the entry point gives that container (75%: 384 MiB).
 */
const RSS_BOUND_BYTES = 400 * 1024 * 1024;
const CONTAINER_HEAP = '--max-old-space-size=384';

type Result = {
  isError?: boolean;
  content: { text?: string }[];
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
};
/** The matches of a search_files answer read off the wire. */
const matchesOf = (message: Record<string, unknown> | undefined) =>
  (message?.result as { structuredContent?: { matches?: unknown[] } } | undefined)?.structuredContent?.matches;
const codeOf = errorCode;

const HUGE_FILES = 50_000;
const hugeName = (i: number) => `f-${String(i).padStart(5, '0')}.md`;
/** Names a star-heavy glob has to work on: long runs of "a" (255 bytes is the longest name). */
const hostileName = (i: number) => `${'a'.repeat(240)}-${i}.md`;
/** A line on which ^(a+)+$ backtracks exponentially. */
const CATASTROPHIC_LINE = `${'a'.repeat(3999)}!`;

const toolCall = (id: number, name: string, args: Record<string, unknown>) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

/** A socket to the server, connected. */
async function openSocket(url: string): Promise<Socket> {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** What a socket got back: the status of the first response line, or 0 when it was closed without one. */
function statusOf(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    let head = '';
    const done = () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      head += chunk;
      if (head.includes('\r\n')) done();
    });
    socket.once('close', done);
  });
}

describe('availability under hostile input', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let serving: ServingProcess;
  let stderr: StderrFollower;
  let probe: ServerProbe;
  let url: string;
  const clients: Client[] = [];
  const reports: PhaseReport[] = [];
  /** One second of /health polling with nothing else to do: the baseline beside every phase. */
  let calm: PhaseReport;

  /** The assertions every phase ends with. */
  function expectAvailable(report: PhaseReport): void {
    reports.push(report);
    const text = `${formatPhase(report)}\n  beside ${formatPhase(calm)}`;
    expect(report.health.failures, text).toEqual([]);
    expect(report.health.answers, text).toBeGreaterThan(0);
    expect(report.health.busyMaxMs, text).toBeLessThan(STALL_BOUND_MS + calm.health.p50Ms);
    expect(report.serverOwnLagFloorMs, text).toBeLessThan(STALL_BOUND_MS);
    expect(report.peakRssBytes, text).toBeLessThan(RSS_BOUND_BYTES);
  }

  async function client(name: string): Promise<Client> {
    const created = await modernHttpClient(url, name);
    clients.push(created);
    return created;
  }

  const call = (c: Client, name: string, args: Record<string, unknown>) =>
    c.callTool({ name, arguments: args }) as Promise<Result>;

  beforeAll(async () => {
    demo = await demoCopy();
    const workspace = join(demo.project, 'workspace');
    await mkdir(join(workspace, 'huge'));
    for (let i = 0; i < HUGE_FILES; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, k) => writeFile(join(workspace, 'huge', hugeName(i + k)), '')),
      );
    }
    await mkdir(join(workspace, 'hostile'));
    await Promise.all(
      Array.from({ length: 2000 }, (_, i) => writeFile(join(workspace, 'hostile', hostileName(i)), 'a\n')),
    );
    await mkdir(join(workspace, 'regex'));
    await Promise.all(
      Array.from({ length: 4 }, (_, i) => writeFile(join(workspace, 'regex', `r-${i}.txt`), `${CATASTROPHIC_LINE}\n`)),
    );
    await mkdir(join(workspace, 'fifo'));
    await writeFile(join(workspace, 'fifo/plain.md'), 'a plain file beside the FIFOs\n');
    for (const fifo of ['pipe.md', 'pipe.csv', 'pipe.txt']) {
      const made = await runCommand('mkfifo', [join(workspace, 'fifo', fifo)]);
      expect(made.code, made.stderr).toBe(0);
    }
    await writeFile(join(workspace, 'big.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(4_000_000));
    // The shipped limits, except the rate: every caller here is the one anonymous principal.
    const config = await demo.configWith(
      'availability.yaml',
      'limits:\n  rateLimit: { perSecond: 5000, burst: 5000 }\n',
    );
    serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', join(demo.dir, 'audit.log')], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${CONTAINER_HEAP}`.trim(),
    });
    stderr = followStderr(serving.child);
    url = serving.url;
    probe = new ServerProbe(url.replace(/\/mcp$/, ''), serving.child.pid as number);
    // A one-second measuring window with nothing to do (a window to measure, not a wait for anything).
    calm = (await watchPhase(probe, 'calm baseline', () => interval(1000))).report;
    reports.push(calm);
  }, 60_000);

  // Each phase starts on a server with nothing in progress, whatever the previous one left running.
  beforeEach(async () => {
    await until(
      async () => (await probe.metrics()).value('mcpd_requests_in_flight') === 0,
      () => 'the server still has requests in progress from the previous phase',
      30_000,
      100,
    );
  }, 40_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    const code = await serving?.stop();
    await demo?.cleanup();
    if (process.env.MCPD_AVAILABILITY_REPORT) {
      await writeFile(process.env.MCPD_AVAILABILITY_REPORT, `${JSON.stringify(reports, null, 2)}\n`);
    }
    const problems = stderr?.problems() ?? [];
    expect(
      problems.filter((line) => !line.includes('"level":"warn"')),
      'the server logged errors',
    ).toEqual([]);
    expect(code, problems.join('\n')).toBe(0);
  }, 30_000);

  it('refuses the brace bomb in search_files and grep include as INVALID_ARGUMENT', async () => {
    const bomb = `${'{*,*,*,*,*,*,*,*}'.repeat(6)}X`;
    const attacker = await client('brace-bomber');
    const { result, report } = await watchPhase(probe, 'brace bomb x16', () =>
      Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          i % 2 === 0
            ? call(attacker, 'search_files', { pattern: bomb })
            : call(attacker, 'grep', { pattern: 'MCP', include: bomb }),
        ),
      ),
    );
    for (const answer of result) {
      expect(codeOf(answer)).toBe('INVALID_ARGUMENT');
      expect(answer.content[0]?.text).toMatch(/alternatives/);
    }
    expectAvailable(report);
  });

  it('answers star-heavy globs in search_files and grep include boundedly, or refuses them', async () => {
    const patterns = [
      `${'*a'.repeat(99)}*b`, // ~200 characters
      `${'*a'.repeat(499)}*b`, // the longest pattern the tools take (1000)
      `*${'a'.repeat(240)}b`, // a long literal after a star: quadratic in the name
      `${'**/'.repeat(30)}${'*a'.repeat(20)}*b`, // globstars, anchored
      `${'{*a,*aa}'.repeat(6)}${'*a'.repeat(20)}*b`, // 64 alternatives, under the caps
      `${'{*a,*aa}'.repeat(7)}*b`, // 128 alternatives: over the cap
    ];
    const attacker = await client('star-gazer');
    // One call at a time: what is measured is what a pattern costs, over 2,000 names of 240 "a"s
    // each. Concurrency has its own phases below.
    const { result, report } = await watchPhase(probe, 'star-heavy globs, one call at a time', async () => {
      const answers: Result[] = [];
      for (const pattern of patterns) {
        answers.push(await call(attacker, 'search_files', { pattern, path: 'workspace/hostile', limit: 1000 }));
        answers.push(
          await call(attacker, 'grep', { pattern: 'a', path: 'workspace/hostile', include: pattern, maxMatches: 1000 }),
        );
      }
      return answers;
    });
    result.forEach((answer, index) => {
      const pattern = patterns[Math.floor(index / 2)] as string;
      if (pattern.startsWith('{*a,*aa}'.repeat(7))) {
        expect(codeOf(answer), pattern).toBe('INVALID_ARGUMENT');
        expect(answer.content[0]?.text).toMatch(/more than 64 alternatives/);
      } else {
        expect(answer.isError, `${pattern}: ${JSON.stringify(answer.content).slice(0, 300)}`).toBeFalsy();
        expect(answer.structuredContent?.matches).toEqual([]);
      }
    });
    expectAvailable(report);
  }, 60_000);

  it('stops catastrophic regexes at the per-file limit, off the event loop', async () => {
    const patterns = ['^(a+)+$', '^(a|aa)+$', '^(a|a?)+$', '(\\w+\\s?)*$'];
    const attacker = await client('backtracker');
    const { result, report } = await watchPhase(probe, 'catastrophic regexes x4', () =>
      Promise.all(patterns.map((pattern) => call(attacker, 'grep', { pattern, path: 'workspace/regex' }))),
    );
    for (const answer of result) {
      expect(codeOf(answer), JSON.stringify(answer.content)).toBe('INVALID_ARGUMENT');
      expect(answer.content[0]?.text).toMatch(/took longer than 2000 ms on one file; simplify it/);
    }
    // The workers that were stopped are replaced: an ordinary grep still works.
    const ordinary = await call(attacker, 'grep', { pattern: '^a+!$', path: 'workspace/regex' });
    expect(ordinary.isError).toBeFalsy();
    expect(ordinary.structuredContent?.matches).toHaveLength(4);
    expectAvailable(report);
  }, 60_000);

  it('answers FIFOs as missing at once, read concurrently by every reading tool', async () => {
    const reader = await client('fifo-reader');
    const { result, report } = await watchPhase(probe, 'FIFOs read by 24 calls at once', () =>
      Promise.all([
        ...Array.from({ length: 8 }, (_, i) =>
          call(reader, 'read_file', { path: `workspace/fifo/pipe.${['md', 'txt'][i % 2]}` }),
        ),
        ...Array.from(
          { length: 4 },
          () =>
            reader.callTool(
              { name: 'process_large_dataset', arguments: { path: 'workspace/fifo/pipe.csv' } },
              { onprogress: () => {} },
            ) as Promise<Result>,
        ),
        ...Array.from({ length: 4 }, () => call(reader, 'get_file_info', { path: 'workspace/fifo/pipe.md' })),
        ...Array.from({ length: 4 }, () => call(reader, 'grep', { pattern: '.', path: 'workspace/fifo' })),
        ...Array.from({ length: 4 }, () =>
          call(reader, 'read_multiple_files', { paths: ['workspace/fifo/pipe.md', 'workspace/fifo/plain.md'] }),
        ),
      ]),
    );
    for (const answer of result.slice(0, 12)) {
      expect(codeOf(answer), JSON.stringify(answer.content)).toBe('NOT_FOUND_OR_DENIED');
    }
    for (const info of result.slice(12, 16)) expect(info.structuredContent?.type).toBe('other');
    for (const grep of result.slice(16, 20)) {
      // The FIFOs are not files to grep: only plain.md is read.
      expect(grep.isError, JSON.stringify(grep.content)).toBeFalsy();
      expect(grep.structuredContent).toMatchObject({ filesScanned: 1 });
    }
    for (const batch of result.slice(20)) {
      expect(batch.isError).toBeFalsy();
      const metadata = batch.content
        .filter((block) => block.text?.startsWith('{"index"'))
        .map((block) => JSON.parse(block.text as string) as { ok: boolean; error?: { code: string } });
      expect(metadata.map((entry) => entry.ok)).toEqual([false, true]);
      expect(metadata[0]?.error?.code).toBe('NOT_FOUND_OR_DENIED');
    }
    // No I/O thread is held by a FIFO (libuv has four): 32 more reads of one, then an ordinary file.
    await Promise.all(Array.from({ length: 32 }, () => call(reader, 'read_file', { path: 'workspace/fifo/pipe.md' })));
    expect((await call(reader, 'read_file', { path: 'workspace/fifo/plain.md' })).isError).toBeFalsy();
    expectAvailable(report);
  });

  it('refuses huge headers (431) and takes many small ones, from 64 connections at once', async () => {
    const { port } = new URL(url);
    const { headers, body } = modernRequest('tools/call', { name: 'list_roots', arguments: {} });
    const request = (extra: string[]) =>
      [
        'POST /mcp HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
        ...extra,
        'Connection: close',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n');
    const send = async (text: string) => {
      const socket = await openSocket(url);
      const status = statusOf(socket);
      // Written, not ended: a client that half-closes its socket after a request has it aborted by
      // Node whenever the server has not answered yet (http.Server does not allow half-open), which
      // is about Node and the client, not about what this phase measures.
      socket.write(text);
      const answered = await status;
      socket.destroy();
      return answered;
    };
    const fdsBefore = probe.fds();
    const { result, report } = await watchPhase(probe, 'huge headers from 64 connections', () =>
      Promise.all([
        // One header of 1 MiB; 4,000 headers (40 KB): over Node's 16 KB.
        ...Array.from({ length: 16 }, () => send(request([`x-pad: ${'a'.repeat(1024 * 1024)}`]))),
        ...Array.from({ length: 16 }, () => send(request(Array.from({ length: 4000 }, (_, i) => `x-h${i}: v`)))),
        // 1,000 small headers (10 KB): within the limits, served.
        ...Array.from({ length: 32 }, () => send(request(Array.from({ length: 1000 }, (_, i) => `x-h${i}: v`)))),
      ]),
    );
    // A refused request is answered 431, or its connection closed before the status could be read.
    for (const status of result.slice(0, 32)) expect([431, 0]).toContain(status);
    expect(result.slice(0, 32)).toContain(431);
    expect(result.slice(32)).toEqual(Array.from({ length: 32 }, () => 200));
    await until(
      () => probe.fds() <= fdsBefore + 4,
      () => `the server holds ${probe.fds()} descriptors, ${fdsBefore} before`,
    );
    expectAvailable(report);
  });

  it('holds 200 bodies declared larger than sent at no cost, refuses oversized ones, and serves meanwhile', async () => {
    const { port } = new URL(url);
    const { headers, body } = modernRequest('tools/call', { name: 'list_roots', arguments: {} });
    const declaring = (length: number) =>
      [
        'POST /mcp HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
        `Content-Length: ${length}`,
        '',
        body.slice(0, 64),
      ].join('\r\n');
    const fdsBefore = probe.fds();
    const served = await client('served-meanwhile');
    const { result, report } = await watchPhase(probe, '200 short bodies held open', async () => {
      const held = await Promise.all(Array.from({ length: 200 }, () => openSocket(url)));
      for (const socket of held) socket.write(declaring(3_000_000));
      const oversized = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const socket = await openSocket(url);
          const status = statusOf(socket);
          socket.write(declaring(10_000_000_000));
          const answered = await status;
          socket.destroy();
          return answered;
        }),
      );
      // Every held request reached the server (it holds a descriptor for each) ...
      await until(
        () => probe.fds() >= fdsBefore + 200,
        () => `the server holds ${probe.fds()} descriptors, ${fdsBefore} before`,
      );
      // ... and none takes a concurrency slot (the principal has 32): calls are served.
      const calls: Result[] = [];
      for (let i = 0; i < 4; i++) calls.push(await call(served, 'list_roots', {}));
      for (const socket of held) socket.destroy();
      return { oversized, calls };
    });
    expect(result.oversized).toEqual(Array.from({ length: 20 }, () => 413));
    for (const answer of result.calls) expect(answer.isError).toBeFalsy();
    await until(
      () => probe.fds() <= fdsBefore + 4,
      () => `the server holds ${probe.fds()} descriptors, ${fdsBefore} before`,
    );
    expectAvailable(report);
  });

  it('keeps serving while 300 connections send their headers a line at a time', async () => {
    const { port } = new URL(url);
    const fdsBefore = probe.fds();
    const served = await client('served-while-slow');
    const { result, report } = await watchPhase(probe, '300 connections sending headers slowly', async () => {
      const sockets = await Promise.all(Array.from({ length: 300 }, () => openSocket(url)));
      for (const socket of sockets) socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
      const answers: Result[] = [];
      // Twenty rounds: every connection sends one more header line, then a call is served.
      for (let round = 0; round < 20; round++) {
        for (const socket of sockets) socket.write(`x-slow-${round}: ${'v'.repeat(100)}\r\n`);
        answers.push(await call(served, 'search_files', { pattern: 'notes', path: 'workspace/fifo' }));
      }
      const held = probe.fds() - fdsBefore;
      for (const socket of sockets) socket.destroy();
      return { answers, held };
    });
    expect(result.held).toBeGreaterThanOrEqual(300);
    for (const answer of result.answers) expect(answer.isError).toBeFalsy();
    await until(
      () => probe.fds() <= fdsBefore + 4,
      () => `the server holds ${probe.fds()} descriptors, ${fdsBefore} before`,
    );
    expectAvailable(report);
  });

  it('pages a directory of 50,000 files to 16 clients at once, and searches it meanwhile', async () => {
    const readers = await Promise.all(Array.from({ length: 16 }, (_, i) => client(`pager-${i}`)));
    const searcher = await client('huge-searcher');
    /** Pages of 1,000 from the start, following the cursors, up to `pages` of them (all when undefined). */
    const pageThrough = async (reader: Client, pages?: number) => {
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await call(reader, 'list_directory', {
          path: 'workspace/huge',
          limit: 1000,
          ...(cursor ? { cursor } : {}),
        });
        expect(page.isError, JSON.stringify(page.content).slice(0, 300)).toBeFalsy();
        const value = page.structuredContent as { entries: { name: string }[]; total: number; nextCursor?: string };
        expect(value.total).toBe(HUGE_FILES);
        names.push(...value.entries.map((entry) => entry.name));
        cursor = value.nextCursor;
      } while (cursor && (pages === undefined || names.length < pages * 1000));
      return names;
    };
    const searchAll = async (pattern: string) => {
      let found = 0;
      let cursor: string | undefined;
      do {
        const page = await call(searcher, 'search_files', {
          pattern,
          path: 'workspace/huge',
          limit: 1000,
          ...(cursor ? { cursor } : {}),
        });
        expect(page.isError, JSON.stringify(page.content).slice(0, 300)).toBeFalsy();
        const value = page.structuredContent as { matches: unknown[]; nextCursor?: string };
        found += value.matches.length;
        cursor = value.nextCursor;
      } while (cursor);
      return found;
    };
    // Sixteen clients page at once: one through all fifty pages, fifteen through the first eight
    // (170 pages of 1,000 entries in all, which a loaded 2-core machine serves within the budget).
    const { result, report } = await watchPhase(probe, '50,000 files paged by 16 clients, searched by 2', () =>
      Promise.all([
        Promise.all(readers.map((reader, i) => pageThrough(reader, i === 0 ? undefined : 8))),
        searchAll('f-*7.md'),
        searchAll('4999'),
      ]),
    );
    const [listings, sevens, fours] = result;
    const expected = Array.from({ length: HUGE_FILES }, (_, i) => hugeName(i));
    expect(listings[0]).toEqual(expected);
    for (const names of listings.slice(1)) expect(names).toEqual(expected.slice(0, 8000));
    expect(sevens).toBe(HUGE_FILES / 10);
    expect(fours).toBe(15); // f-04999.md, f-14999.md, ... and f-49990.md to f-49999.md
    expectAvailable(report);
  }, 60_000);

  it('refuses JSON-RPC batches of 100 calls whole (429), and bounds the work of one that fits', async () => {
    const batchOf = (size: number, make: (id: number) => unknown) =>
      Array.from({ length: size }, (_, i) => make(i + 1));
    const search = (id: number) =>
      toolCall(id, 'search_files', { pattern: 'f-*', path: 'workspace/huge', limit: 1000 });
    const ping = (id: number) => ({ jsonrpc: '2.0', id, method: 'ping' });
    const { result, report } = await watchPhase(
      probe,
      'JSON-RPC batches: 16 of 100 calls, then one of 30',
      async () => {
        const refused = await Promise.all([
          ...Array.from({ length: 8 }, () => postLegacy(url, batchOf(100, search))),
          ...Array.from({ length: 8 }, () => postLegacy(url, batchOf(100, ping))),
        ]);
        const statuses = await Promise.all(
          refused.map(async (answer) => {
            await answer.body?.cancel();
            return [answer.status, answer.headers.get('retry-after')];
          }),
        );
        // 30 calls: within the 32 a principal may have in progress.
        const fits = await postLegacy(url, batchOf(30, search));
        return { statuses, fits: { status: fits.status, messages: await messagesOf(fits) } };
      },
    );
    expect(result.statuses).toEqual(Array.from({ length: 16 }, () => [429, '1']));
    expect(result.fits.status).toBe(200);
    const ids = result.fits.messages.map((message) => message.id).sort((a, b) => Number(a) - Number(b));
    expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const message of result.fits.messages) expect(matchesOf(message)).toHaveLength(1000);
    expectAvailable(report);
  }, 60_000);

  it('decides limits from the body: 160 tools/call dressed as subscriptions/listen get 32 slots', async () => {
    const disguised = { 'mcp-method': 'subscriptions/listen' };
    // A long call (a 64 MB file in 1 KiB chunks): the first 32 are still running when the rest arrive.
    const long = (id: number) => toolCall(id, 'process_large_dataset', { path: 'workspace/big.csv', chunkSize: 1024 });
    const before = await probe.metrics();
    const stop = new AbortController();
    // No scrape of /metrics inside the phase: each one resets the event-loop histogram it is judged by.
    const { result, report } = await watchPhase(probe, 'Mcp-Method disguise x160', async () => {
      const answers = await Promise.all(
        Array.from({ length: 160 }, (_, i) => postLegacy(url, long(i), disguised, stop.signal)),
      );
      // Dropping the 32 calls cancels them: none is held open like a stream would be.
      stop.abort();
      await Promise.allSettled(answers.map((answer) => answer.body?.cancel()));
      return answers.map((answer) => answer.status);
    });
    await until(
      async () => {
        const now = await probe.metrics();
        return now.value('mcpd_requests_in_flight') === 0 && now.value('mcpd_sse_streams_open') === 0;
      },
      () => 'the cancelled calls are still in progress',
      20_000,
      100,
    );
    expect(result.filter((status) => status === 200)).toHaveLength(32);
    expect(result.filter((status) => status === 429)).toHaveLength(128);
    expect(
      (await probe.metrics()).value('mcpd_requests_rejected_total', 'reason="concurrency"') -
        valueOr0(before, 'mcpd_requests_rejected_total', 'reason="concurrency"'),
    ).toBe(128);
    expectAvailable(report);
  }, 60_000);

  it('streams a file in the largest chunks process_large_dataset takes without holding the loop', async () => {
    const reader = await client('big-chunks');
    const { result, report } = await watchPhase(probe, 'process_large_dataset, 16 MiB chunks', () =>
      call(reader, 'process_large_dataset', { path: 'workspace/big.csv', chunkSize: 16 * 1024 * 1024 }),
    );
    expect(result.structuredContent).toMatchObject({ bytes: 64_000_000, chunks: 4 });
    expectAvailable(report);
  }, 60_000);
});

/** A labelled value that may not have been recorded yet (a counter never incremented has no series). */
function valueOr0(samples: MetricSamples, name: string, labels: string): number {
  try {
    return samples.value(name, labels);
  } catch {
    return 0;
  }
}
