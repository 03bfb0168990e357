import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { ChangeFeed } from '../access/changes.js';
import { sharedState } from '../cluster/shared.js';
import type { Config } from '../config/schema.js';
import { containerMemoryLimit } from '../fs/cgroup.js';
import { unreachableRoot } from '../fs/roots.js';
import { InFlightCalls } from '../http/cancellation.js';
import { createReferenceHandler, warmUp } from '../http/referenceHandler.js';
import { HttpEdge, MCP_PATH, MetricsListener } from '../http/server.js';
import { listenerUrl } from '../http/url.js';
import { ALWAYS_WRITABLE } from '../mcp/context.js';
import { logInternalErrors } from '../mcp/errors.js';
import { TaskRunner } from '../mcp/tasks.js';

/** What tasks/get suggests between polls: a second keeps a poll cheap and a result prompt. */
const TASK_POLL_INTERVAL_MS = 1000;

import { Lifecycle } from '../ops/lifecycle.js';
import { Metrics } from '../ops/metrics.js';
import { Tracing } from '../ops/tracing.js';
import { ANONYMOUS } from '../policy/types.js';
import type { Runtime } from '../services.js';
import { type AppDeps, Core, type Observers } from './core.js';

/** The process-wide observers for a config: metrics always (cheap), tracing when configured. */
export function createObservers(config: Config, build: { version: string; commit: string }): Observers {
  return {
    metrics: new Metrics({ ...build, memoryLimitBytes: containerMemoryLimit() }, config.metrics.enabled),
    tracing: new Tracing(config.tracing, build.version),
  };
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
  const shared = await sharedState(config, {
    logger,
    replica: randomUUID(),
    observer: {
      command: (command, outcome, seconds) => metrics.redisCommands.observe({ command, outcome }, seconds),
      fallback: (limit, mode) => metrics.sharedFallbacks.inc({ limit, mode }),
      traced: (command, run) =>
        tracing.inSpan(`redis ${command}`, { 'db.system.name': 'redis', 'db.operation.name': command }, run),
    },
  });
  // A config that cannot start (a root missing) must not leave a Redis connection behind.
  const core = await Core.start(config, deps, observers, shared.changes).catch(async (error: unknown) => {
    await shared.close();
    throw error;
  });
  const tasks = new TaskRunner(
    shared.tasks,
    shared.calls,
    {
      ttlMs: config.cluster.taskTtlMs,
      leaseMs: config.cluster.leaseMs,
      pollIntervalMs: TASK_POLL_INTERVAL_MS,
    },
    shared.taskSignals,
  );
  const { changes, stop } = core;
  const lifecycle = new Lifecycle();
  const notReadyReason = async (): Promise<string | null> => {
    const state = lifecycle.notReadyReason();
    if (state !== null) return state;
    if (!deps.audit.healthy) return 'the audit log cannot be written';
    const cluster = shared.notReadyReason();
    if (cluster !== null) return cluster;
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
    rateLimiter: shared.rateLimiter,
    callQuota: shared.calls,
    tasks,
    changes,
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
        // Calls and tasks both get the grace period; tasks left at its end end failed, with the reason.
        drain: async (graceMs) => {
          const [calls, running] = await Promise.all([edge.drain(graceMs), tasks.drain(graceMs)]);
          return { unfinished: calls.unfinished + running.unfinished };
        },
        settle: (ms) => edge.settle(ms),
        close: () => {
          tasks.endStreams();
          return reference.close();
        },
      });
      await edge.close();
      await metricsListener?.close();
      // After the drain: the calls that finished released their shared slots over this connection.
      await shared.close();
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
