import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { ChangeFeed } from './access/changes.js';
import type { GateObservers } from './access/gate.js';
import { AuditLog } from './audit/log.js';
import { StreamAuditSink } from './audit/sink.js';
import { InMemoryRateLimiter } from './cluster/rateLimiter.js';
import type { Config } from './config/schema.js';
import { McpdError } from './errors.js';
import { containerMemoryLimit } from './fs/cgroup.js';
import { RegexPool } from './fs/regex.js';
import { unreachableRoot } from './fs/roots.js';
import { StatPool } from './fs/stats.js';
import { RootWatcher } from './fs/watch.js';
import { removeStaleTempFiles } from './fs/write.js';
import { InFlightCalls } from './http/cancellation.js';
import { createReferenceHandler, warmUp } from './http/referenceHandler.js';
import { HttpEdge, MCP_PATH, MetricsListener } from './http/server.js';
import { listenerUrl } from './http/url.js';
import { ALWAYS_WRITABLE } from './mcp/context.js';
import { logInternalErrors } from './mcp/errors.js';
import { Lifecycle } from './ops/lifecycle.js';
import type { Logger } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { Tracing } from './ops/tracing.js';
import type { PolicyEngine } from './policy/engine.js';
import { ANONYMOUS } from './policy/types.js';
import { buildRuntime, GREP_WORKERS, type Runtime, type RuntimeShared, STAT_WORKERS } from './services.js';
import { serveStdioConnection } from './stdio/connection.js';

/**
 * Composition: wires config, policy, auth, audit, MCP and the HTTP edge into a running server, and
 * owns the order of its reloads and its shutdown. main.ts decides when; tests start the very same
 * thing in-process.
 */

/** What a call still running when the grace period ends is stopped with (HTTP and stdio alike). */
const cancelledByShutdown = () =>
  new McpdError('UNAVAILABLE', 'the server is shutting down and stopped this call after its grace period; retry it');

/** How long cancelled work may take to answer and reach its audit record, after the grace period. */
const CANCEL_SETTLE_MS = 2000;

export interface AppDeps {
  readonly logger: Logger;
  readonly audit: AuditLog;
  readonly version: string;
  /** Counters and spans; created once per process, they outlive reloads. HTTP makes its own when absent. */
  readonly observers?: Observers;
}

export interface Observers extends GateObservers {
  readonly metrics: Metrics;
  readonly tracing: Tracing;
}

/** The process-wide observers for a config: metrics always (cheap), tracing when configured. */
export function createObservers(config: Config, build: { version: string; commit: string }): Observers {
  return {
    metrics: new Metrics({ ...build, memoryLimitBytes: containerMemoryLimit() }, config.metrics.enabled),
    tracing: new Tracing(config.tracing, build.version),
  };
}

/** The audit log a config asks for: stderr by default, or an append-only file. */
export function openAudit(config: Config, logger: Logger): AuditLog {
  const onError = (error: Error) =>
    logger.error({ err: error }, 'audit sink failure: file operations are refused until it recovers');
  const onRecovered = () => logger.warn('audit sink recovered: file operations are served again');
  const sink =
    config.audit.sink === 'file' && config.audit.path
      ? new StreamAuditSink({ file: config.audit.path }, onError, onRecovered)
      : new StreamAuditSink({ fd: 2 }, onError, onRecovered);
  return new AuditLog(sink);
}

function rootWatcher(config: Config, policy: PolicyEngine, logger: Logger): RootWatcher | null {
  if (!config.resources.watch) return null;
  return new RootWatcher({
    roots: policy.roots,
    debounceMs: config.resources.watchDebounceMs,
    ignore: (_root, relPath) => policy.isExcluded(relPath),
    onError: (error) => logger.warn({ err: error }, 'file watcher error; change notifications may be incomplete'),
  });
}

/**
 * Removes what killed writes left behind in the writable roots, in the background: best effort,
 * logged, stopped by `signal` (shutdown).
 */
async function sweepTempFiles(runtime: Runtime, logger: Logger, signal: AbortSignal): Promise<void> {
  const { limits } = runtime.config;
  for (const root of runtime.gate.policy.roots) {
    if (root.write.length === 0 || signal.aborted) continue;
    try {
      const { removed } = await removeStaleTempFiles(root, {
        olderThanMs: limits.staleTempFileMs,
        maxEntries: limits.walkMaxEntries,
        signal,
      });
      if (removed > 0) logger.info({ root: root.name, removed }, 'removed temp files of writes that never finished');
    } catch (error) {
      logger.warn({ err: error, root: root.name }, 'could not sweep leftover temp files');
    }
  }
}

/** Settings a reload cannot change, because they are bound at start-up; a change is logged as kept. */
function fixedSettings(config: Config): Record<string, unknown> {
  const { server, audit, limits, metrics, tracing, resources, reload } = config;
  return {
    'server.host': server.host,
    'server.port': server.port,
    'server.tls': server.tls === null ? 'off' : 'on',
    'server.maxBodyBytes': server.maxBodyBytes,
    'server.sseKeepAliveMs': server.sseKeepAliveMs,
    'server.keepAliveTimeoutMs': server.keepAliveTimeoutMs,
    'server.headersTimeoutMs': server.headersTimeoutMs,
    'server.requestTimeoutMs': server.requestTimeoutMs,
    'audit.sink': audit.sink,
    'audit.path': audit.path,
    'limits.maxSubscriptionStreams': limits.maxSubscriptionStreams,
    'resources.watchDebounceMs': resources.watchDebounceMs,
    reload: JSON.stringify(reload),
    metrics: JSON.stringify(metrics),
    tracing: JSON.stringify(tracing),
  };
}

/** What a transport gives the shared shutdown sequence. */
interface Transport {
  /** Stops taking work; resolves when what is in flight is done, or after `graceMs`, saying what is left. */
  drain(graceMs: number): Promise<{ unfinished: number }>;
  /** Waits (up to `ms`) for cancelled work to answer. */
  settle(ms: number): Promise<void>;
  /** Ends what the transport still holds open (subscription streams, the connection). */
  close(): Promise<void>;
}

/**
 * What both transports run on: the runtime every new request starts from (swapped whole on
 * reload; requests already running keep the one they captured), the change feed, what outlives
 * reloads (observers, regex workers), the background sweep of leftover temp files, and the one
 * ordered shutdown.
 */
class Core {
  /** Aborted when in-flight work is given up (shutdown past its grace period), and to stop background work. */
  readonly stop = new AbortController();
  readonly changes: ChangeFeed;
  private runtime: Runtime;
  private sweeping: Promise<void> = Promise.resolve();

  private constructor(
    first: Runtime,
    private readonly deps: AppDeps,
    private readonly shared: RuntimeShared & { readonly regexes: RegexPool; readonly stats: StatPool },
  ) {
    this.runtime = first;
    // Every call in flight listens on this signal until it ends: as many listeners as the
    // concurrency limits allow, which is no leak.
    setMaxListeners(0, this.stop.signal);
    this.changes = new ChangeFeed(
      rootWatcher(first.config, first.gate.policy, deps.logger),
      () => this.runtime.gate.policy,
      first.config.resources.watchDebounceMs,
    );
  }

  static async start(config: Config, deps: AppDeps, observers?: GateObservers): Promise<Core> {
    const shared = {
      ...(observers ? { observers } : {}),
      regexes: new RegexPool(GREP_WORKERS),
      stats: new StatPool(STAT_WORKERS),
    };
    return new Core(await buildRuntime(config, deps.audit, shared), deps, shared);
  }

  get current(): Runtime {
    return this.runtime;
  }

  /** Starts what runs in the background once the transport serves. */
  serving(): void {
    this.sweeping = sweepTempFiles(this.runtime, this.deps.logger, this.stop.signal);
  }

  /** Builds and swaps in a runtime for `config`; throws (and changes nothing) when it is unusable. */
  async reload(config: Config): Promise<{ ignored: string[] }> {
    const before = fixedSettings(this.runtime.config);
    const after = fixedSettings(config);
    const ignored = Object.keys(before).filter((key) => before[key] !== after[key]);
    const next = await buildRuntime(config, this.deps.audit, this.shared);
    const rootsChanged =
      JSON.stringify(this.runtime.gate.policy.roots) !== JSON.stringify(next.gate.policy.roots) ||
      this.runtime.config.resources.watch !== config.resources.watch;
    this.runtime = next;
    this.deps.logger.level = config.log.level;
    if (rootsChanged) await this.changes.useWatcher(rootWatcher(config, next.gate.policy, this.deps.logger));
    return { ignored };
  }

  /**
   * The ordered shutdown both transports share: stop taking work and let what is in flight finish
   * within the grace period; cancel what remains with a clear error and let it answer; close the
   * transport; wait for the last audit records; then stop background work.
   */
  async shutdown(transport: Transport): Promise<void> {
    const graceMs = this.runtime.config.shutdown.gracePeriodMs;
    const { unfinished } = await transport.drain(graceMs);
    if (unfinished > 0) {
      this.deps.logger.warn({ unfinished, graceMs }, 'grace period over; cancelling what is still running');
      this.stop.abort(cancelledByShutdown());
      // Cancelled tools still answer (with that error) and write their audit records.
      await transport.settle(CANCEL_SETTLE_MS);
    }
    await this.close(transport);
  }

  /** Closes the transport and settles: what the end of input (stdin closed) needs, with no draining. */
  async close(transport: Pick<Transport, 'close'>): Promise<void> {
    await transport.close();
    await this.runtime.gate.whenIdle(CANCEL_SETTLE_MS);
    this.stop.abort(cancelledByShutdown());
    await this.sweeping;
    await this.shared.regexes.close();
    await this.shared.stats.close();
    this.changes.close();
  }
}

export interface HttpApp {
  readonly url: string;
  readonly address: AddressInfo;
  /** Where metrics are served on their own port, when metrics.port is set. */
  readonly metricsUrl: string | undefined;
  readonly runtime: () => Runtime;
  readonly changes: ChangeFeed;
  readonly lifecycle: Lifecycle;
  /** Swaps in a new config for new requests; see RuntimeHolder.reload. */
  reload(config: Config): Promise<{ ignored: string[] }>;
  /**
   * Ordered shutdown: fail readiness, stop taking work, let in-flight work finish within the grace
   * period, cancel what remains with a clear error, close subscription streams.
   */
  shutdown(): Promise<void>;
}

export async function startHttpApp(config: Config, deps: AppDeps): Promise<HttpApp> {
  const { logger } = deps;
  const observers = deps.observers ?? createObservers(config, { version: deps.version, commit: 'unknown' });
  const { metrics, tracing } = observers;
  const core = await Core.start(config, deps, observers);
  const { changes, stop } = core;
  const lifecycle = new Lifecycle();
  const notReadyReason = async (): Promise<string | null> => {
    const state = lifecycle.notReadyReason();
    if (state !== null) return state;
    if (!deps.audit.healthy) return 'the audit log cannot be written';
    const runtime = core.current;
    const missing = await unreachableRoot(runtime.gate.policy.roots);
    if (missing !== null) return `root "${missing}" is not reachable`;
    return runtime.authenticator.notReadyReason();
  };
  metrics.observeReadiness(async () => (await notReadyReason()) === null);
  const reference = createReferenceHandler({
    changes,
    version: deps.version,
    logger,
    maxBodyBytes: config.server.maxBodyBytes,
    keepAliveMs: config.server.sseKeepAliveMs,
    maxSubscriptions: config.limits.maxSubscriptionStreams,
  });
  const edge = new HttpEdge({
    host: config.server.host,
    port: config.server.port,
    runtime: () => core.current,
    reference,
    cancelAll: stop.signal,
    version: deps.version,
    calls: new InFlightCalls(),
    metrics,
    tracing,
    rateLimiter: new InMemoryRateLimiter(),
    readiness: { notReadyReason },
    logger,
    onInitialize: (event) =>
      core.current.gate.recordInitialize(
        {
          principal: event.principal,
          requestId: event.requestId,
          client: event.client,
          userAgent: event.userAgent,
          transport: 'http',
          method: 'initialize',
          tool: null,
        },
        event,
      ),
    onRefusal: (refusal) =>
      core.current.gate.refuse(
        {
          principal: { id: refusal.principal, scopes: [] },
          requestId: refusal.requestId,
          client: refusal.userAgent,
          userAgent: refusal.userAgent,
          transport: 'http',
          method: 'http',
          tool: null,
        },
        { op: refusal.op, rule: refusal.rule, reason: refusal.reason, requested: refusal.requested },
      ),
  });
  await warmUp(reference, {
    services: core.current,
    principal: ANONYMOUS,
    requestId: 'warm-up',
    transport: 'http',
    userAgent: null,
    signal: new AbortController().signal,
    cancelAll: stop.signal,
    flow: ALWAYS_WRITABLE,
    outcome: {},
    reportInternal: logInternalErrors(logger),
  });
  const address = await edge.listen();
  const metricsListener =
    config.metrics.enabled && config.metrics.port !== undefined
      ? new MetricsListener(
          config.metrics.host ?? config.server.host,
          config.metrics.port,
          config.metrics.path,
          metrics,
        )
      : undefined;
  const metricsAddress = await metricsListener?.listen();
  lifecycle.markReady();
  core.serving();
  const url = listenerUrl(edge.scheme, address.address, address.port, MCP_PATH);

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      lifecycle.markDraining();
      await core.shutdown({
        drain: (graceMs) => edge.drain(graceMs),
        settle: (ms) => edge.settle(ms),
        close: () => reference.close(),
      });
      await edge.close();
      await metricsListener?.close();
      // Spans of the last requests go out before the process does; an unreachable collector
      // costs those spans, never the clean exit (the audit log still closes after this).
      await tracing
        .shutdown()
        .catch((error: unknown) =>
          logger.warn({ err: error }, 'could not export the last spans; the trace collector is unreachable'),
        );
      lifecycle.markStopped();
    })();
    return stopping;
  };
  const reload = async (next: Config) => {
    const outcome = await core.reload(next);
    if (next.server.tls && config.server.tls) edge.updateTls(next.server.tls);
    return outcome;
  };
  const metricsUrl =
    metricsAddress && listenerUrl('http', metricsAddress.address, metricsAddress.port, config.metrics.path);
  return { url, address, metricsUrl, runtime: () => core.current, changes, lifecycle, reload, shutdown };
}

export interface StdioApp {
  /** Resolves when the client closes stdin. */
  readonly closed: Promise<void>;
  readonly runtime: () => Runtime;
  reload(config: Config): Promise<{ ignored: string[] }>;
  /** Stop taking requests, finish those in flight within the grace period, cancel the rest, close. */
  shutdown(): Promise<void>;
  /** The client went away: nothing is left to answer, only records to settle. */
  close(): Promise<void>;
}

export async function startStdioApp(
  config: Config,
  deps: AppDeps & { readonly input: Readable; readonly output: Writable },
): Promise<StdioApp> {
  const core = await Core.start(config, deps);
  const connection = serveStdioConnection({
    services: () => core.current,
    cancelAll: core.stop.signal,
    changes: core.changes,
    version: deps.version,
    logger: deps.logger,
    input: deps.input,
    output: deps.output,
  });
  core.serving();
  // The connection drains by refusing new requests; cancelled work answers within the same drain.
  const transport = {
    drain: (graceMs: number) => connection.drain(graceMs),
    settle: async (ms: number) => {
      await connection.drain(ms);
    },
    close: () => connection.close(),
  };
  let stopping: Promise<void> | undefined;
  return {
    closed: connection.closed,
    close: () => {
      stopping ??= core.close(transport);
      return stopping;
    },
    runtime: () => core.current,
    reload: (next) => core.reload(next),
    shutdown: () => {
      stopping ??= core.shutdown(transport);
      return stopping;
    },
  };
}
