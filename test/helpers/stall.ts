import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

/**
 * Watching a server child process from outside: its Prometheus metrics, its /proc entries, and
 * /health polled back to back from a worker thread while a workload runs. Linux only (/proc).
 */

/**
 * The pace of a sampling loop: waits `ms` between two samples. Never a way to wait for something
 * to happen; tests wait on conditions (see `until`).
 */
export async function interval(ms: number): Promise<void> {
  await sleep(ms);
}

/** Polls `condition` (every `everyMs`) until it holds, or throws `describe()` after `timeoutMs`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  describe: () => string,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await interval(everyMs);
  }
}

/** A GET on a connection of its own, closed after the answer (so it leaves no socket in either process). */
export function getText(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** One scrape of the Prometheus text format. */
export class MetricSamples {
  private readonly samples: { name: string; labels: string; value: number }[] = [];

  constructor(text: string) {
    for (const line of text.split('\n')) {
      if (line.length === 0 || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      const series = line.slice(0, space);
      const brace = series.indexOf('{');
      const name = brace === -1 ? series : series.slice(0, brace);
      const labels = brace === -1 ? '' : series.slice(brace + 1, -1);
      this.samples.push({ name, labels, value: Number(line.slice(space + 1)) });
    }
  }

  /** The value of an unlabelled series (or the first with `labels` among its label text); throws when absent. */
  value(name: string, labels = ''): number {
    const sample = this.samples.find((s) => s.name === name && s.labels.includes(labels));
    if (sample === undefined) throw new Error(`no metric ${name}{${labels}} in the scrape`);
    return sample.value;
  }

  /** The sum of the series of `name` whose label text passes `labels` (every series by default). */
  sumWhere(name: string, labels: (text: string) => boolean = () => true): number {
    return this.samples.filter((s) => s.name === name && labels(s.labels)).reduce((total, s) => total + s.value, 0);
  }

  /** The sum of every series of `name` (e.g. nodejs_active_handles, one series per handle type). */
  sum(name: string): number {
    const series = this.samples.filter((s) => s.name === name);
    if (series.length === 0) throw new Error(`no metric ${name} in the scrape`);
    return series.reduce((total, s) => total + s.value, 0);
  }
}

/** The resolution of prom-client's event-loop monitor (perf_hooks.monitorEventLoopDelay), in ms. */
export const LAG_MONITOR_RESOLUTION_MS = 10;

/** A server child process seen from outside: /metrics and /proc/<pid>. */
export class ServerProbe {
  constructor(
    /** http://host:port, without a path. */
    readonly base: string,
    readonly pid: number,
  ) {}

  /**
   * Scrapes /metrics. Note that prom-client's event-loop histogram is reset by every scrape: the
   * nodejs_eventloop_lag_*_seconds of a scrape cover the time since the previous one.
   */
  async metrics(): Promise<MetricSamples> {
    const { status, body } = await getText(`${this.base}/metrics`);
    if (status !== 200) throw new Error(`/metrics answered ${status}: ${body.slice(0, 200)}`);
    return new MetricSamples(body);
  }

  private status(): Record<string, string> {
    const fields: Record<string, string> = {};
    for (const line of readFileSync(`/proc/${this.pid}/status`, 'utf8').split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
    }
    return fields;
  }

  private kib(field: string): number {
    const value = this.status()[field];
    if (value === undefined) throw new Error(`no ${field} in /proc/${this.pid}/status`);
    return Number.parseInt(value, 10) * 1024;
  }

  /** Resident set size now, in bytes (VmRSS). */
  rss(): number {
    return this.kib('VmRSS');
  }

  /** The highest resident set size the process ever had, in bytes (VmHWM): a peak no sampling can miss. */
  peakRss(): number {
    return this.kib('VmHWM');
  }

  /** Open file descriptors, counted in /proc/<pid>/fd. */
  fds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** What the open descriptors are, counted by kind (`socket`, `anon_inode:[eventfd]`, a file path...). */
  fdKinds(): Record<string, number> {
    const kinds: Record<string, number> = {};
    for (const fd of readdirSync(`/proc/${this.pid}/fd`)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${this.pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const kind = target.replace(/:\[\d+\]$/, '');
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    return kinds;
  }

  /**
   * Nanoseconds the main (event-loop) thread spent runnable but waiting for a CPU, from
   * /proc/<pid>/task/<pid>/schedstat: what the machine, not the server, added to its delays.
   */
  mainThreadRunQueueWaitNs(): number {
    const [, waiting] = readFileSync(`/proc/${this.pid}/task/${this.pid}/schedstat`, 'utf8').trim().split(' ');
    return Number(waiting);
  }
}

/** What the /health poller saw. */
export interface HealthPolls {
  /** Latency of each /health answer, in ms, in order. */
  readonly latencies: number[];
  /**
   * Each latency less the time, within it, that the server's main thread and the poller's thread
   * spent runnable but waiting for a CPU.
   */
  readonly unqueued: number[];
  /**
   * CPU time the server's main thread used while each /health request waited: how long mcpd kept its
   * event loop busy before answering, whatever the machine did meanwhile.
   */
  readonly busy: number[];
  /** Anything but a 200 (status or error), with when it happened (ms since the poller started). */
  readonly failures: string[];
}

// Plain JavaScript for a worker thread: its own event loop, so the test's own work (parsing big
// results, driving clients) cannot delay a poll and be taken for a server stall. Around each poll it
// reads schedstat (ns on a CPU, ns waiting for one) of the server's main thread and of its own thread.
const POLLER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const serverStat = '/proc/' + workerData.pid + '/task/' + workerData.pid + '/schedstat';
const schedstat = (path) => {
  try {
    const [running, waiting] = readFileSync(path, 'utf8').split(' ');
    return { running: Number(running) / 1e6, waiting: Number(waiting) / 1e6 };
  } catch {
    return { running: 0, waiting: 0 };
  }
};
const latencies = [];
const unqueued = [];
const busy = [];
const failures = [];
const began = performance.now();
let stopping = false;
parentPort.on('message', (message) => { if (message === 'stop') stopping = true; });
function once() {
  return new Promise((resolve) => {
    const server = schedstat(serverStat);
    const self = schedstat('/proc/thread-self/schedstat');
    const started = performance.now();
    const finish = (failure) => {
      const ms = performance.now() - started;
      const serverAfter = schedstat(serverStat);
      const selfAfter = schedstat('/proc/thread-self/schedstat');
      if (failure) failures.push(failure + ' at ' + Math.round(started - began) + ' ms');
      latencies.push(ms);
      unqueued.push(Math.max(0, ms - (serverAfter.waiting - server.waiting) - (selfAfter.waiting - self.waiting)));
      busy.push(serverAfter.running - server.running);
      resolve();
    };
    const req = http.get(workerData.url, { agent, timeout: workerData.timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode === 200 ? undefined : 'status ' + res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in ' + workerData.timeoutMs + ' ms')));
    req.on('error', (error) => finish(error.message));
  });
}
(async () => {
  while (!stopping) {
    await once();
    if (latencies.length === 1) parentPort.postMessage('polling');
  }
  agent.destroy();
  parentPort.postMessage({ latencies, unqueued, busy, failures });
})();
`;

/** A worker thread polling GET /health one request at a time, back to back, until stopped. */
export class HealthPoller {
  private readonly worker: Worker;
  private readonly started: Promise<void>;
  private readonly result: Promise<HealthPolls>;

  constructor(probe: ServerProbe, timeoutMs = 10_000) {
    this.worker = new Worker(POLLER_SOURCE, {
      eval: true,
      workerData: { url: `${probe.base}/health`, pid: probe.pid, timeoutMs },
    });
    let polling: () => void = () => {};
    this.started = new Promise((resolve) => {
      polling = resolve;
    });
    this.result = new Promise((resolve, reject) => {
      this.worker.on('message', (message: 'polling' | HealthPolls) => {
        if (message === 'polling') polling();
        else resolve(message);
      });
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`the /health poller exited with ${code}`)));
    });
  }

  /** Resolves once the first /health answer came back. */
  whenPolling(): Promise<void> {
    return Promise.race([this.started, this.result.then(() => {})]);
  }

  async stop(): Promise<HealthPolls> {
    this.worker.postMessage('stop');
    const polls = await this.result;
    await this.worker.terminate();
    return polls;
  }
}

/** The percentile `p` (0-100) of `values` (nearest rank); 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** The largest of `values` (0 for none), without spreading a long array into arguments. */
export function maxOf(values: readonly number[]): number {
  return values.reduce((max, value) => Math.max(max, value), 0);
}

/** What one phase of work did to the server. */
export interface PhaseReport {
  readonly label: string;
  readonly durationMs: number;
  /**
   * The longest event-loop delay the server itself recorded during the phase (prom-client's
   * nodejs_eventloop_lag_max_seconds, whose histogram the scrape opening the phase reset), less the
   * 10 ms timer interval every sample holds. It includes any time the machine kept the thread from
   * a CPU.
   */
  readonly serverLagMs: number;
  /** Run-queue wait of the server's main thread over the whole phase: time the machine, not mcpd, held it. */
  readonly runQueueWaitMs: number;
  /**
   * serverLagMs less all of runQueueWaitMs: a delay mcpd caused for certain, even if every moment
   * the machine held its thread had fallen inside the longest delay. 0 unless that is exceeded.
   */
  readonly serverOwnLagFloorMs: number;
  readonly health: {
    readonly answers: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly maxMs: number;
    /** The longest answer with the CPU waits of the server's main thread and of the poller taken off. */
    readonly unqueuedMaxMs: number;
    /** The most CPU time mcpd's main thread used while one /health request waited: its longest stall. */
    readonly busyMaxMs: number;
    readonly failures: readonly string[];
  };
  /** Garbage collections during the phase (prom-client's nodejs_gc_duration_seconds): how many, how long. */
  readonly gc: { readonly count: number; readonly over10Ms: number; readonly seconds: number };
  readonly rssBytes: number;
  readonly peakRssBytes: number;
}

/** Totals of nodejs_gc_duration_seconds in one scrape, all kinds together. */
function gcTotals(samples: MetricSamples) {
  const name = 'nodejs_gc_duration_seconds';
  const count = samples.sumWhere(`${name}_count`);
  return {
    count,
    over10Ms: count - samples.sumWhere(`${name}_bucket`, (labels) => labels.includes('le="0.01"')),
    seconds: samples.sumWhere(`${name}_sum`),
  };
}

const MB = 1024 * 1024;

export function formatPhase(report: PhaseReport): string {
  const { health } = report;
  return (
    `${report.label}: ${Math.round(report.durationMs)} ms; /health x${health.answers} ` +
    `p50 ${health.p50Ms.toFixed(2)} ms, p99 ${health.p99Ms.toFixed(1)} ms, max ${health.maxMs.toFixed(1)} ms, ` +
    `max less CPU waits ${health.unqueuedMaxMs.toFixed(1)} ms, ` +
    `most main-thread CPU while one waited ${health.busyMaxMs.toFixed(1)} ms` +
    `${health.failures.length > 0 ? `, failures ${JSON.stringify(health.failures.slice(0, 5))}` : ''}; ` +
    `server event-loop lag max ${report.serverLagMs.toFixed(1)} ms while its main thread waited ` +
    `${report.runQueueWaitMs.toFixed(1)} ms for a CPU (floor of its own stall ${report.serverOwnLagFloorMs.toFixed(1)} ms); ` +
    `${report.gc.count} GCs (${report.gc.over10Ms} over 10 ms, ${(report.gc.seconds * 1000).toFixed(1)} ms in all); ` +
    `RSS ${(report.rssBytes / MB).toFixed(1)} MB, peak ${(report.peakRssBytes / MB).toFixed(1)} MB`
  );
}

/**
 * Runs `work` while /health is polled back to back, bracketed by two scrapes of /metrics: the first
 * resets the server's event-loop histogram, the second reads the longest delay since. `work` must
 * not scrape /metrics itself: that would reset the histogram mid-phase.
 */
export async function watchPhase<T>(
  probe: ServerProbe,
  label: string,
  work: () => Promise<T>,
): Promise<{ result: T; report: PhaseReport }> {
  const poller = new HealthPoller(probe);
  await poller.whenPolling();
  const gcBefore = gcTotals(await probe.metrics());
  const waitedBefore = probe.mainThreadRunQueueWaitNs();
  const started = performance.now();
  let polls: HealthPolls = { latencies: [], unqueued: [], busy: [], failures: [] };
  let result: T;
  try {
    result = await work();
  } finally {
    // Stopped whatever happens, so a failing workload does not leave a worker polling.
    polls = await poller
      .stop()
      .catch((error: Error) => ({ latencies: [], unqueued: [], busy: [], failures: [`poller: ${error.message}`] }));
  }
  const waitedMs = (probe.mainThreadRunQueueWaitNs() - waitedBefore) / 1e6;
  const after = await probe.metrics();
  const gcAfter = gcTotals(after);
  const durationMs = performance.now() - started;
  const serverLagMs = Math.max(0, after.value('nodejs_eventloop_lag_max_seconds') * 1000 - LAG_MONITOR_RESOLUTION_MS);
  return {
    result,
    report: {
      label,
      durationMs,
      serverLagMs,
      runQueueWaitMs: waitedMs,
      serverOwnLagFloorMs: Math.max(0, serverLagMs - waitedMs),
      health: {
        answers: polls.latencies.length,
        p50Ms: percentile(polls.latencies, 50),
        p99Ms: percentile(polls.latencies, 99),
        maxMs: maxOf(polls.latencies),
        unqueuedMaxMs: maxOf(polls.unqueued),
        busyMaxMs: maxOf(polls.busy),
        failures: polls.failures,
      },
      gc: {
        count: gcAfter.count - gcBefore.count,
        over10Ms: gcAfter.over10Ms - gcBefore.over10Ms,
        seconds: gcAfter.seconds - gcBefore.seconds,
      },
      rssBytes: probe.rss(),
      peakRssBytes: probe.peakRss(),
    },
  };
}

/** Least-squares slope of `points` ([x, y] pairs), in y units per x unit; 0 for fewer than two points. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let covariance = 0;
  let variance = 0;
  for (const [x, y] of points) {
    covariance += (x - meanX) * (y - meanY);
    variance += (x - meanX) ** 2;
  }
  return variance === 0 ? 0 : covariance / variance;
}

/** What a long-running server child said on stderr, kept small: the line count and its warnings and errors. */
export interface StderrFollower {
  /** Lines seen since `followStderr` was called. */
  lines(): number;
  /** Log lines at warn, error or fatal (at most the first 200), and any line that is not JSON. */
  problems(): string[];
}

/**
 * Takes over the stderr of a server started by serveMcpd: its own listener keeps every byte and
 * parses the whole text again on each chunk, which over thousands of request log lines is quadratic
 * work in this process. This one keeps the pipe flowing (a full pipe would block the server) and
 * keeps only what a test asserts on.
 */
export function followStderr(child: ChildProcess): StderrFollower {
  const stream = child.stderr;
  if (!stream) throw new Error('the server was not started with a stderr pipe');
  stream.removeAllListeners('data');
  let partial = '';
  let count = 0;
  const problems: string[] = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.length === 0) continue;
      count += 1;
      if (problems.length >= 200) continue;
      if (!line.startsWith('{')) problems.push(line);
      else if (/"level":"(warn|error|fatal)"/.test(line)) problems.push(line);
    }
  });
  return { lines: () => count, problems: () => [...problems] };
}
