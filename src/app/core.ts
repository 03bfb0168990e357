import { setMaxListeners } from 'node:events';
import { ChangeFeed } from '../access/changes.js';
import { DatabaseEngines } from '../access/databases.js';
import type { GateObservers } from '../access/gate.js';
import { FileAuditSink } from '../audit/fileSink.js';
import { AuditLog } from '../audit/log.js';
import { OtlpAuditSink } from '../audit/otlpSink.js';
import { StreamAuditSink, TeeAuditSink } from '../audit/sink.js';
import { type BusChange, type ChangeBus, InMemoryChangeBus } from '../cluster/changeBus.js';
import type { Config } from '../config/schema.js';
import { McpdError } from '../errors.js';
import { FileSystemWorkers } from '../fs/fsWorkers.js';
import { RegexPool } from '../fs/regex.js';
import { RootWatcher } from '../fs/watch.js';
import { removeStaleTempFiles } from '../fs/write.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { Tracing } from '../ops/tracing.js';
import type { PolicyEngine } from '../policy/engine.js';
import { buildRuntime, FS_WORKERS, GREP_WORKERS, type Runtime, type RuntimeShared } from '../services.js';

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
  /** Counters and spans; created once per process, they outlive reloads. HTTP makes its own when absent. */
  readonly observers?: Observers;
}

export interface Observers extends GateObservers {
  readonly metrics: Metrics;
  readonly tracing: Tracing;
}

/**
 * The audit log a config asks for (stderr by default, or an append-only file), its chain keyed
 * when the config names a key, opened with its genesis record: `start` says which process this is.
 */
export function openAudit(
  config: Config,
  logger: Logger,
  start?: { readonly version: string; readonly host: string; readonly pid: number; readonly configSha256: string },
): AuditLog {
  const onError = (error: Error) =>
    logger.error({ err: error }, 'audit sink failure: file operations are refused until it recovers');
  const onRecovered = () => logger.warn('audit sink recovered: file operations are served again');
  const { sink: kind, path, rotate, otlp } = config.audit;
  const local =
    kind === 'file' && path
      ? new FileAuditSink(path, rotate, { onError, onRecovered })
      : new StreamAuditSink(kind === 'stdout' ? 1 : 2, onError, onRecovered);
  const shipped =
    otlp === null
      ? null
      : new OtlpAuditSink(
          { ...otlp, serviceName: config.tracing.serviceName, version: start?.version ?? 'unknown' },
          {
            onError: (error) =>
              logger.error(
                { err: error, endpoint: otlp.endpoint },
                'audit collector unreachable: file and database operations are refused until it takes the records',
              ),
            onRecovered: () => logger.warn({ endpoint: otlp.endpoint }, 'audit collector reachable again: serving'),
          },
        );
  const sink = shipped === null ? local : new TeeAuditSink([local, shipped]);
  const audit = new AuditLog(sink, undefined, config.audit.hmacKey === null ? null : Buffer.from(config.audit.hmacKey));
  if (start) audit.genesis(start);
  return audit;
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
  const { server, audit, limits, metrics, tracing, resources, reload, cluster } = config;
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
    // Settings and secrets alike: a change of password restarts the replica, it does not reconnect.
    cluster: JSON.stringify(cluster),
  };
}

/** What a transport gives the shared shutdown sequence. */
export interface Transport {
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
export class Core {
  /** Aborted when in-flight work is given up (shutdown past its grace period), and to stop background work. */
  readonly stop = new AbortController();
  readonly changes: ChangeFeed;
  private runtime: Runtime;
  private sweeping: Promise<void> = Promise.resolve();

  private constructor(
    first: Runtime,
    private readonly deps: AppDeps,
    private readonly shared: RuntimeShared & {
      readonly regexes: RegexPool;
      readonly fsWorkers: FileSystemWorkers;
      readonly databaseEngines: DatabaseEngines;
    },
    bus: ChangeBus,
  ) {
    this.runtime = first;
    // Every call in flight listens on this signal until it ends: as many listeners as the
    // concurrency limits allow, which is no leak.
    setMaxListeners(0, this.stop.signal);
    this.changes = new ChangeFeed(
      rootWatcher(first.config, first.gate.policy, deps.logger),
      () => this.runtime.gate.policy,
      first.config.resources.watchDebounceMs,
      bus,
    );
  }

  /**
   * `bus` carries changes to listeners: this process's alone (the default), or every replica's
   * (cluster/shared.ts, with Redis).
   */
  static async start(
    config: Config,
    deps: AppDeps,
    observers?: GateObservers,
    bus: ChangeBus = new InMemoryChangeBus(),
  ): Promise<Core> {
    let feed: ChangeFeed | undefined;
    const shared = {
      ...(observers ? { observers } : {}),
      regexes: new RegexPool(GREP_WORKERS),
      fsWorkers: new FileSystemWorkers(FS_WORKERS),
      databaseEngines: new DatabaseEngines(),
      onChanged: (change: BusChange) => feed?.changed(change),
    };
    const core = new Core(await buildRuntime(config, deps.audit, shared), deps, shared, bus);
    feed = core.changes;
    return core;
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
    await this.shared.fsWorkers.close();
    await this.shared.databaseEngines.close();
    this.changes.close();
  }
}
