import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { GateObservers } from './access/gate.js';
import { AuditLog } from './audit/log.js';
import { StreamAuditSink } from './audit/sink.js';
import { InMemoryRateLimiter } from './cluster/rateLimiter.js';
import type { Config } from './config/schema.js';
import { McpdError } from './errors.js';
import { containerMemoryLimit } from './fs/cgroup.js';
import { RegexPool } from './fs/regex.js';
import { unreachableRoot } from './fs/roots.js';
import { RootWatcher } from './fs/watch.js';
import { removeStaleTempFiles } from './fs/write.js';
import { InFlightCalls } from './http/cancellation.js';
import { HttpEdge, MCP_PATH, MetricsListener } from './http/server.js';
import { listenerUrl } from './http/url.js';
import { ChangeFeed } from './mcp/changes.js';
import { createHttpEndpoint } from './mcp/endpoint.js';
import { ExchangeRegistry } from './mcp/exchange.js';
import { serveStdioConnection } from './mcp/stdio.js';
import { Lifecycle } from './ops/lifecycle.js';
import type { Logger } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { Tracing } from './ops/tracing.js';
import type { PolicyEngine } from './policy/engine.js';
import { buildRuntime, GREP_WORKERS, type Runtime, type RuntimeShared } from './services.js';

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

/**
 * The runtime every new request starts from, swapped whole on reload. Requests already running
 * keep the runtime they started with (they captured it), so they finish under the old config.
 */
class RuntimeHolder {
  constructor(
    private runtime: Runtime,
    private readonly deps: AppDeps,
    private readonly changes: ChangeFeed,
    private readonly shared: RuntimeShared,
  ) {}

  get current(): Runtime {
    return this.runtime;
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
  const shared = { observers, regexes: new RegexPool(GREP_WORKERS) };
  const first = await buildRuntime(config, deps.audit, shared);
  const changes = new ChangeFeed(
    rootWatcher(config, first.gate.policy, logger),
    () => holder.current.gate.policy,
    config.resources.watchDebounceMs,
  );
  const holder = new RuntimeHolder(first, deps, changes, shared);
  const lifecycle = new Lifecycle();
  const exchanges = new ExchangeRegistry();
  const notReadyReason = async (): Promise<string | null> => {
    const state = lifecycle.notReadyReason();
    if (state !== null) return state;
    if (!deps.audit.healthy) return 'the audit log cannot be written';
    const runtime = holder.current;
    const missing = await unreachableRoot(runtime.gate.policy.roots);
    if (missing !== null) return `root "${missing}" is not reachable`;
    return runtime.authenticator.notReadyReason();
  };
  metrics.observeReadiness(async () => (await notReadyReason()) === null);
  const stop = new AbortController();
  const endpoint = createHttpEndpoint({
    services: () => holder.current,
    changes,
    exchanges,
    cancelAll: stop.signal,
    version: deps.version,
    logger,
    maxBodyBytes: config.server.maxBodyBytes,
    keepAliveMs: config.server.sseKeepAliveMs,
    maxSubscriptions: config.limits.maxSubscriptionStreams,
  });
  const edge = new HttpEdge({
    host: config.server.host,
    port: config.server.port,
    runtime: () => holder.current,
    endpoint,
    exchanges,
    calls: new InFlightCalls(),
    metrics,
    tracing,
    rateLimiter: new InMemoryRateLimiter(),
    readiness: { notReadyReason },
    logger,
    onInitialize: (event) =>
      holder.current.gate.recordInitialize(
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
      holder.current.gate.refuse(
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
  const sweeping = sweepTempFiles(first, logger, stop.signal);
  const url = listenerUrl(edge.scheme, address.address, address.port, MCP_PATH);

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      const graceMs = holder.current.config.shutdown.gracePeriodMs;
      lifecycle.markDraining();
      const { unfinished } = await edge.drain(graceMs);
      if (unfinished > 0) {
        logger.warn({ unfinished, graceMs }, 'grace period over; cancelling what is still running');
        stop.abort(cancelledByShutdown());
        // Cancelled tools still answer (with that error) and write their audit records.
        await edge.settle(CANCEL_SETTLE_MS);
      }
      await endpoint.close();
      await holder.current.gate.whenIdle(CANCEL_SETTLE_MS);
      stop.abort(cancelledByShutdown());
      await sweeping;
      await shared.regexes.close();
      changes.close();
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
    const outcome = await holder.reload(next);
    if (next.server.tls && config.server.tls) edge.updateTls(next.server.tls);
    return outcome;
  };
  const metricsUrl =
    metricsAddress && listenerUrl('http', metricsAddress.address, metricsAddress.port, config.metrics.path);
  return { url, address, metricsUrl, runtime: () => holder.current, changes, lifecycle, reload, shutdown };
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
  const shared = { regexes: new RegexPool(GREP_WORKERS) };
  const first = await buildRuntime(config, deps.audit, shared);
  const changes = new ChangeFeed(
    rootWatcher(config, first.gate.policy, deps.logger),
    () => holder.current.gate.policy,
    config.resources.watchDebounceMs,
  );
  const holder = new RuntimeHolder(first, deps, changes, shared);
  const stop = new AbortController();
  const connection = serveStdioConnection({
    services: () => holder.current,
    cancelAll: stop.signal,
    changes,
    version: deps.version,
    logger: deps.logger,
    input: deps.input,
    output: deps.output,
  });
  const sweeping = sweepTempFiles(first, deps.logger, stop.signal);
  let stopping: Promise<void> | undefined;
  const close = async () => {
    await connection.close();
    await holder.current.gate.whenIdle(CANCEL_SETTLE_MS);
    stop.abort(cancelledByShutdown());
    await sweeping;
    await shared.regexes.close();
    changes.close();
  };
  return {
    closed: connection.closed,
    close: () => {
      stopping ??= close();
      return stopping;
    },
    runtime: () => holder.current,
    reload: (next) => holder.reload(next),
    shutdown: () => {
      stopping ??= (async () => {
        const graceMs = holder.current.config.shutdown.gracePeriodMs;
        const { unfinished } = await connection.drain(graceMs);
        if (unfinished > 0) {
          deps.logger.warn({ unfinished, graceMs }, 'grace period over; cancelling what is still running');
          stop.abort(cancelledByShutdown());
          await connection.drain(CANCEL_SETTLE_MS);
        }
        await close();
      })();
      return stopping;
    },
  };
}
