import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { AuditLog } from './audit/log.js';
import { StreamAuditSink } from './audit/sink.js';
import type { Config } from './config/schema.js';
import { RootWatcher } from './fs/watch.js';
import { HttpEdge, MCP_PATH } from './http/server.js';
import { ChangeFeed } from './mcp/changes.js';
import { createHttpEndpoint } from './mcp/endpoint.js';
import type { McpServices } from './mcp/scope.js';
import { serveStdioConnection } from './mcp/stdio.js';
import { Lifecycle } from './ops/lifecycle.js';
import type { Logger } from './ops/logger.js';
import { buildServices } from './services.js';

/**
 * Composition: wires config, policy, audit, MCP and the HTTP edge into a running server. main.ts
 * decides when to start and stop it; tests start the very same thing in-process.
 */

/** How long cancelled work may take to reach its audit record during shutdown. */
const AUDIT_SETTLE_MS = 2000;

export interface AppDeps {
  readonly logger: Logger;
  readonly audit: AuditLog;
  readonly version: string;
}

/** The audit log a config asks for: stderr by default, or an append-only file. */
export function openAudit(config: Config, logger: Logger): AuditLog {
  const onError = (error: Error) => logger.error({ err: error }, 'audit sink failure');
  const sink =
    config.audit.sink === 'file' && config.audit.path
      ? new StreamAuditSink({ file: config.audit.path }, onError)
      : new StreamAuditSink({ fd: 2 }, onError);
  return new AuditLog(sink);
}

function changeFeed(config: Config, services: McpServices, logger: Logger): ChangeFeed {
  const policy = services.gate.policy;
  const watcher = config.resources.watch
    ? new RootWatcher({
        roots: policy.roots,
        debounceMs: config.resources.watchDebounceMs,
        ignore: (_root, relPath) => policy.isExcluded(relPath),
        onError: (error) => logger.warn({ err: error }, 'file watcher error; change notifications may be incomplete'),
      })
    : null;
  return new ChangeFeed(watcher, () => policy, config.resources.watchDebounceMs);
}

export interface HttpApp {
  readonly url: string;
  readonly address: AddressInfo;
  readonly services: McpServices;
  readonly changes: ChangeFeed;
  readonly lifecycle: Lifecycle;
  /** Ordered shutdown: fail readiness, stop taking work, finish in-flight work, close streams. */
  shutdown(): Promise<void>;
}

export async function startHttpApp(config: Config, deps: AppDeps): Promise<HttpApp> {
  const { logger } = deps;
  const services = await buildServices(config, deps.audit);
  const changes = changeFeed(config, services, logger);
  const lifecycle = new Lifecycle();
  const endpoint = createHttpEndpoint({
    services: () => services,
    changes,
    version: deps.version,
    logger,
    maxBodyBytes: config.server.maxBodyBytes,
    keepAliveMs: config.server.sseKeepAliveMs,
  });
  const edge = new HttpEdge({
    host: config.server.host,
    port: config.server.port,
    allowedHosts: config.server.allowedHosts,
    allowedOrigins: config.server.allowedOrigins,
    maxBodyBytes: config.server.maxBodyBytes,
    endpoint,
    readiness: lifecycle,
    logger,
  });
  const address = await edge.listen();
  lifecycle.markReady();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}${MCP_PATH}`;

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      lifecycle.markDraining();
      const { unfinished } = await edge.drain(config.shutdown.gracePeriodMs);
      if (unfinished > 0) logger.warn({ unfinished }, 'grace period over; cancelling what is still running');
      await endpoint.close();
      // What the close cancelled still writes its audit record before the log may close.
      await services.gate.whenIdle(AUDIT_SETTLE_MS);
      changes.close();
      edge.close();
      lifecycle.markStopped();
    })();
    return stopping;
  };
  return { url, address, services, changes, lifecycle, shutdown };
}

export interface StdioApp {
  readonly closed: Promise<void>;
  readonly services: McpServices;
  close(): Promise<void>;
}

export async function startStdioApp(
  config: Config,
  deps: AppDeps & { readonly input: Readable; readonly output: Writable },
): Promise<StdioApp> {
  const services = await buildServices(config, deps.audit);
  const changes = changeFeed(config, services, deps.logger);
  const connection = serveStdioConnection({
    services: () => services,
    changes,
    version: deps.version,
    logger: deps.logger,
    input: deps.input,
    output: deps.output,
  });
  return {
    closed: connection.closed,
    services,
    close: async () => {
      await connection.close();
      await services.gate.whenIdle(AUDIT_SETTLE_MS);
      changes.close();
    },
  };
}
