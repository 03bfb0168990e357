import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { modernRequest } from '../helpers/raw.js';
import {
  followStderr,
  interval,
  type MetricSamples,
  ServerProbe,
  type StderrFollower,
  slope,
  until,
} from '../helpers/stall.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Soak: a bounded mixed load for a few minutes against mcpd as a child process (the built binary,
 * with the heap deploy/docker/entrypoint.sh gives it in the 512 MiB container of deploy/k8s).
 * WORKERS clients, each one request at a time, cycle through reads, batch reads, listings, searches,
 * greps, file info, a write/edit/read/delete round in a scratch directory, a streamed
 * process_large_dataset (progress over SSE), reads the policy denies (.env, a path outside every
 * root), and subscriptions/listen streams opened and closed. Every answer is checked and counted by
 * kind; the expected denials are not errors, and anything else (a transport error, an HTTP status
 * other than 200, a JSON-RPC error, a tool error with an unexpected code) is, and there must be none.
 *
 * Every SAMPLE_MS the process is sampled: RSS, heap used, active handles and open descriptors from
 * /metrics, and the descriptors in /proc/PID/fd. Over the last three quarters of the run (after
 * warm-up) a least-squares slope is fitted to each; the slopes are in the assertion messages and, with the
 * counts, in a JSON summary written to $MCPD_SOAK_REPORT when it is set. The duration is
 * $MCPD_SOAK_SECONDS (default 120).
 *
 * What is asserted:
 * - no unexpected answer, and every kind of operation was exercised;
 * - descriptors and handles return to within SETTLE_SLACK of their baseline once the load stops and
 *   its connections are closed (deterministic: waited for, with a deadline);
 * - heap and RSS do not trend up: their slopes stay under HEAP_SLOPE_BOUND and RSS_SLOPE_BOUND.
 *   Why these bounds: under this load the heap saw-tooths by ~20 MB between collections every few
 *   seconds, so a slope fitted to a minute of 2 s samples is only known to ~3 MB/min (measured
 *   here: second-half slopes of -1.7 and -1.4 MB/min, one-minute windows from -0.6 to +4.7 MB/min
 *   while the server was still warming up), and twice in CI a one-minute window read 8.07 and 8.27
 *   MB/min by where the collections fell. The fit therefore covers the last 90 s of the 120 (the
 *   error falls as the window to the power -1.5: 1.8 times less), after 30 s in which the heap
 *   reaches its working range (a 300 s run: the post-collection troughs stayed within 28-33 MB
 *   throughout, 0.1 MB/min). 8 MB/min clears that noise and still
 *   catches ~500 bytes kept per request at the ~16,000 requests a minute measured here: a leak that
 *   fills the 384 MiB heap of a 512 MiB pod within the hour. A longer run ($MCPD_SOAK_SECONDS)
 *   resolves smaller leaks: the error of the slope falls as the duration to the power -1.5. RSS also
 *   holds pages V8 and the allocator return lazily (measured: -1.1 to +3.6 MB/min); its bound is
 *   12 MB/min.
 */

const DURATION_S = Number(process.env.MCPD_SOAK_SECONDS ?? 120);
if (!(DURATION_S >= 10)) throw new Error(`MCPD_SOAK_SECONDS must be a number of seconds, at least 10: ${DURATION_S}`);
const WORKERS = 8;
const SAMPLE_MS = 2000;
/** The load runs this long first, unmeasured, before the baseline is taken. */
const WARMUP_S = 5;
const HEAP_SLOPE_BOUND = 8 * 1024 * 1024; // bytes per minute
const RSS_SLOPE_BOUND = 12 * 1024 * 1024; // bytes per minute
/** Descriptors and handles may differ from their baseline by this much after the load. */
const SETTLE_SLACK = 3;
const CONTAINER_HEAP = '--max-old-space-size=384';

interface Answer {
  readonly status: number;
  readonly messages: Record<string, unknown>[];
}

interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly handles: number;
  readonly fds: number;
  readonly procFds: number;
}

type ToolResult = {
  isError?: boolean;
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
};

const errorCode = (result: ToolResult | undefined) =>
  (result?._meta?.['dev.mcpd/error'] as { code?: string } | undefined)?.code;

/** The JSON-RPC messages of an answer: a JSON body, or the data lines of an event stream. */
function parseMessages(contentType: string, text: string): Record<string, unknown>[] {
  if (contentType.startsWith('text/event-stream')) {
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  }
  return text ? [JSON.parse(text) as Record<string, unknown>] : [];
}

/** One 2026-07-28 request over `agent`, read to its end. */
function exchange(
  agent: Agent,
  url: string,
  method: string,
  params: Record<string, unknown>,
  meta?: Record<string, unknown>,
): Promise<Answer> {
  const { headers, body } = modernRequest(method, params, { client: 'soak', ...(meta ? { meta } : {}) });
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, messages: parseMessages(res.headers['content-type'] ?? '', text) });
        } catch (error) {
          reject(error);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens a subscriptions/listen stream, waits for its acknowledgement, and closes it. */
function listenOnce(agent: Agent, url: string): Promise<Answer> {
  const { headers, body } = modernRequest(
    'subscriptions/listen',
    { notifications: { resourcesListChanged: true } },
    { client: 'soak-listener' },
  );
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('notifications/subscriptions/acknowledged')) {
          const messages = parseMessages('text/event-stream', text.slice(0, text.lastIndexOf('\n\n') + 2));
          // Closing the response is how a client ends its stream.
          res.destroy();
          resolve({ status: res.statusCode ?? 0, messages });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, messages: parseMessages('text/event-stream', text) }));
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One kind of operation of the mix: what it sends, and whether the answer is what it should be. */
interface Operation {
  readonly kind: string;
  /** Runs it; returns undefined when the answer is as expected, else what was wrong. */
  run(worker: number, round: number): Promise<string | undefined>;
  /** An expected denial is counted apart from successes; neither is an error. */
  readonly denial?: boolean;
}

describe('soak: a bounded mixed load', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let serving: ServingProcess;
  let stderr: StderrFollower;
  let probe: ServerProbe;
  let url: string;
  const agent = new Agent({ keepAlive: true, maxSockets: WORKERS * 2 });

  const call = (name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
    exchange(agent, url, 'tools/call', { name, arguments: args }, meta);

  /** The tool result of an answer, or what was wrong with the answer. */
  function resultOf(answer: Answer): ToolResult | string {
    if (answer.status !== 200) return `HTTP ${answer.status}: ${JSON.stringify(answer.messages).slice(0, 300)}`;
    const final = answer.messages.find((message) => 'result' in message || 'error' in message);
    if (!final) return `no result in ${JSON.stringify(answer.messages).slice(0, 300)}`;
    if ('error' in final) return `JSON-RPC error ${JSON.stringify(final.error)}`;
    return final.result as ToolResult;
  }

  /** A call that must succeed, then pass `check`. */
  const succeeds =
    (
      name: string,
      args: (worker: number, round: number) => Record<string, unknown>,
      check?: (r: ToolResult) => boolean,
    ) =>
    async (worker: number, round: number) => {
      const result = resultOf(await call(name, args(worker, round)));
      if (typeof result === 'string') return `${name}: ${result}`;
      if (result.isError) return `${name}: ${JSON.stringify(result.content).slice(0, 300)}`;
      if (check && !check(result)) return `${name}: unexpected result ${JSON.stringify(result).slice(0, 300)}`;
      return undefined;
    };

  /** A read the policy must refuse as NOT_FOUND_OR_DENIED. */
  const denied = (path: string) => async () => {
    const result = resultOf(await call('read_file', { path }));
    if (typeof result === 'string') return `read_file ${path}: ${result}`;
    return errorCode(result) === 'NOT_FOUND_OR_DENIED' ? undefined : `read_file ${path}: ${JSON.stringify(result)}`;
  };

  const operations: Operation[] = [
    { kind: 'read_file', run: succeeds('read_file', () => ({ path: 'README.md' })) },
    {
      kind: 'read_multiple_files',
      run: succeeds(
        'read_multiple_files',
        () => ({ paths: ['README.md', 'docs/architecture.md', '.env'] }),
        // Two files read; .env refused on its own (the batch still succeeds).
        (r) => (r.content ?? []).filter((block) => block.text?.includes('"NOT_FOUND_OR_DENIED"')).length === 1,
      ),
    },
    {
      kind: 'list_directory',
      run: succeeds(
        'list_directory',
        (_, round) => ({ path: round % 2 === 0 ? '' : 'docs' }),
        (r) => Array.isArray(r.structuredContent?.entries),
      ),
    },
    {
      kind: 'search_files',
      run: succeeds(
        'search_files',
        () => ({ pattern: '*.md' }),
        (r) => ((r.structuredContent?.matches as unknown[] | undefined) ?? []).length > 0,
      ),
    },
    {
      kind: 'grep',
      run: succeeds(
        'grep',
        () => ({ pattern: 'MCP', include: '*.md' }),
        (r) => ((r.structuredContent?.matches as unknown[] | undefined) ?? []).length > 0,
      ),
    },
    { kind: 'get_file_info', run: succeeds('get_file_info', () => ({ path: 'data/sales.csv' })) },
    {
      kind: 'write_edit_delete',
      async run(worker, round) {
        const path = `workspace/scratch/w${worker}-${round}.txt`;
        const steps: [string, Record<string, unknown>][] = [
          ['write_file', { path, content: `worker ${worker} round ${round}\n`.repeat(50) }],
          ['edit_file', { path, edits: [{ oldText: `round ${round}`, newText: 'edited', replaceAll: true }] }],
          ['read_file', { path }],
          ['delete_file', { path }],
        ];
        for (const [name, args] of steps) {
          const result = resultOf(await call(name, args));
          if (typeof result === 'string') return `${name}: ${result}`;
          if (result.isError) return `${name}: ${JSON.stringify(result.content).slice(0, 300)}`;
          if (name === 'read_file' && !result.content?.some((block) => block.text?.includes('worker')))
            return `read_file ${path}: ${JSON.stringify(result.content).slice(0, 300)}`;
        }
        return undefined;
      },
    },
    {
      kind: 'process_large_dataset (streamed)',
      async run(worker, round) {
        const answer = await call(
          'process_large_dataset',
          { path: 'data/sales.csv', chunkSize: 8192 },
          { progressToken: `p-${worker}-${round}` },
        );
        const result = resultOf(answer);
        if (typeof result === 'string') return `process_large_dataset: ${result}`;
        if (result.isError) return `process_large_dataset: ${JSON.stringify(result.content)}`;
        const progress = answer.messages.filter((message) => message.method === 'notifications/progress').length;
        // 164,639 bytes in 8 KiB chunks: one notification per chunk.
        return progress === 21 ? undefined : `process_large_dataset: ${progress} progress notifications`;
      },
    },
    { kind: 'denied: .env', denial: true, run: denied('.env') },
    { kind: 'denied: outside the roots', denial: true, run: denied('/etc/passwd') },
    {
      kind: 'subscriptions/listen',
      async run() {
        const answer = await listenOnce(agent, url);
        if (answer.status !== 200) return `subscriptions/listen: HTTP ${answer.status}`;
        return answer.messages.some((message) => message.method === 'notifications/subscriptions/acknowledged')
          ? undefined
          : `subscriptions/listen: ${JSON.stringify(answer.messages).slice(0, 300)}`;
      },
    },
  ];

  async function sample(started: number): Promise<Sample> {
    const metrics: MetricSamples = await probe.metrics();
    return {
      t: (performance.now() - started) / 1000,
      rss: metrics.value('process_resident_memory_bytes'),
      heapUsed: metrics.value('nodejs_heap_size_used_bytes'),
      handles: metrics.sum('nodejs_active_handles'),
      fds: metrics.value('process_open_fds'),
      procFds: probe.fds(),
    };
  }

  beforeAll(async () => {
    demo = await demoCopy();
    await mkdir(join(demo.project, 'workspace/scratch'));
    await writeFile(join(demo.project, 'workspace/scratch/.keep.md'), '');
    // The shipped limits, except the rate: the eight workers are one anonymous principal.
    const config = await demo.configWith('soak.yaml', 'limits:\n  rateLimit: { perSecond: 10000, burst: 10000 }\n');
    serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', join(demo.dir, 'audit.log')], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${CONTAINER_HEAP}`.trim(),
    });
    stderr = followStderr(serving.child);
    url = serving.url;
    probe = new ServerProbe(url.replace(/\/mcp$/, ''), serving.child.pid as number);
  });

  afterAll(async () => {
    agent.destroy();
    const code = await serving?.stop();
    await demo?.cleanup();
    expect(code, stderr?.problems().join('\n')).toBe(0);
  });

  it(
    `serves ${WORKERS} workers for ${DURATION_S} s without an unexpected answer, and its memory, handles and descriptors stay flat`,
    async () => {
      const counts = new Map<string, { ok: number; denied: number; unexpected: number }>();
      const unexpected: string[] = [];
      /** WORKERS workers running the mix until `deadline`, every answer counted. */
      const load = (deadline: number) =>
        Promise.all(
          Array.from({ length: WORKERS }, async (_, id) => {
            for (let round = 0; performance.now() < deadline; round++) {
              // Each worker starts at a different operation, so the mix is spread at every moment.
              const operation = operations[(id + round) % operations.length] as Operation;
              const tally = counts.get(operation.kind) ?? { ok: 0, denied: 0, unexpected: 0 };
              counts.set(operation.kind, tally);
              let problem: string | undefined;
              try {
                problem = await operation.run(id, round);
              } catch (error) {
                problem = `${operation.kind}: ${(error as Error).message}`;
              }
              if (problem !== undefined) {
                tally.unexpected += 1;
                if (unexpected.length < 20) unexpected.push(problem);
              } else if (operation.denial) tally.denied += 1;
              else tally.ok += 1;
            }
          }),
        );

      // Warm-up: the same load for WARMUP_S, so what the server creates once, on first use under
      // concurrency (its two grep workers, the file watcher's inotify instance, compiled code), is
      // in the baseline. Then its connections are closed and the server left idle.
      await load(performance.now() + WARMUP_S * 1000);
      const warmupRequests = [...counts.values()].reduce((sum, t) => sum + t.ok + t.denied + t.unexpected, 0);
      agent.destroy();
      await until(
        async () => {
          const metrics = await probe.metrics();
          return metrics.value('mcpd_requests_in_flight') === 0 && metrics.value('mcpd_sse_streams_open') === 0;
        },
        () => 'the warm-up calls did not finish',
      );
      const baseline = await sample(performance.now());
      const baselineFds = probe.fdKinds();

      const samples: Sample[] = [];
      const started = performance.now();
      let loadDone = false;
      const sampler = (async () => {
        while (!loadDone) {
          samples.push(await sample(started));
          await interval(SAMPLE_MS);
        }
      })();
      await load(started + DURATION_S * 1000);
      const loadSeconds = (performance.now() - started) / 1000;
      loadDone = true;
      await sampler;

      // The load is over and its connections closed: descriptors and handles come back.
      agent.destroy();
      let settled = await sample(started);
      const describeSettle = () =>
        `after the load: ${settled.procFds} descriptors (${baseline.procFds} before), ` +
        `${settled.handles} handles (${baseline.handles} before); descriptors now ` +
        `${JSON.stringify(probe.fdKinds())}, before ${JSON.stringify(baselineFds)}`;
      await until(
        async () => {
          settled = await sample(started);
          return (
            settled.procFds <= baseline.procFds + SETTLE_SLACK &&
            settled.fds <= baseline.fds + SETTLE_SLACK &&
            settled.handles <= baseline.handles + SETTLE_SLACK
          );
        },
        describeSettle,
        15_000,
        250,
      ).catch(() => {});

      const measured = samples.filter((s) => s.t >= loadSeconds / 4);
      const perMinute = (field: keyof Sample, points: Sample[]) => slope(points.map((s) => [s.t / 60, s[field]]));
      const MB = 1024 * 1024;
      const totals = [...counts.values()].reduce(
        (sum, tally) => ({
          ok: sum.ok + tally.ok,
          denied: sum.denied + tally.denied,
          unexpected: sum.unexpected + tally.unexpected,
        }),
        { ok: 0, denied: 0, unexpected: 0 },
      );
      const slopes = {
        rssMBPerMin: perMinute('rss', measured) / MB,
        heapUsedMBPerMin: perMinute('heapUsed', measured) / MB,
        handlesPerMin: perMinute('handles', measured),
        openFdsPerMin: perMinute('fds', measured),
        procFdsPerMin: perMinute('procFds', measured),
      };
      const summary = {
        durationSeconds: Math.round(loadSeconds * 10) / 10,
        workers: WORKERS,
        // Every request, the warm-up's included (counted and checked the same way).
        requests: totals.ok + totals.denied + totals.unexpected,
        warmupRequests,
        requestsPerSecond: Math.round((totals.ok + totals.denied + totals.unexpected - warmupRequests) / loadSeconds),
        ...totals,
        byKind: Object.fromEntries(counts),
        firstUnexpected: unexpected,
        slopes,
        baseline,
        afterLoad: settled,
        peakRssMB: Math.max(...samples.map((s) => s.rss)) / MB,
        samples: samples.map((s) => [
          Math.round(s.t * 10) / 10,
          Math.round(s.rss / 1024),
          Math.round(s.heapUsed / 1024),
          s.handles,
          s.fds,
          s.procFds,
        ]),
        sampleColumns: ['t (s)', 'RSS (KiB)', 'heap used (KiB)', 'handles', 'open fds', '/proc fds'],
        serverWarnings: stderr.problems().slice(0, 20),
      };
      if (process.env.MCPD_SOAK_REPORT) {
        await writeFile(process.env.MCPD_SOAK_REPORT, `${JSON.stringify(summary, null, 2)}\n`);
      }
      const text = JSON.stringify({ ...summary, samples: undefined, sampleColumns: undefined }, null, 1);

      expect(unexpected, text).toEqual([]);
      for (const operation of operations) {
        const tally = counts.get(operation.kind);
        expect((tally?.ok ?? 0) + (tally?.denied ?? 0), `${operation.kind} never ran\n${text}`).toBeGreaterThan(0);
      }
      // Sampling kept at least half its pace (a scrape is slower under load), so the slopes have points.
      expect(samples.length, text).toBeGreaterThanOrEqual(Math.floor(DURATION_S / (SAMPLE_MS / 1000) / 2));
      expect(settled.procFds, describeSettle()).toBeLessThanOrEqual(baseline.procFds + SETTLE_SLACK);
      expect(settled.fds, describeSettle()).toBeLessThanOrEqual(baseline.fds + SETTLE_SLACK);
      expect(settled.handles, describeSettle()).toBeLessThanOrEqual(baseline.handles + SETTLE_SLACK);
      expect(slopes.heapUsedMBPerMin * MB, `heap slope (MB/min)\n${text}`).toBeLessThan(HEAP_SLOPE_BOUND);
      expect(slopes.rssMBPerMin * MB, `RSS slope (MB/min)\n${text}`).toBeLessThan(RSS_SLOPE_BOUND);
      // The server logged nothing at error level or above while serving.
      expect(
        stderr.problems().filter((line) => !line.includes('"level":"warn"')),
        text,
      ).toEqual([]);
    },
    (DURATION_S + 30) * 1000,
  );
});
