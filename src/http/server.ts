import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ChangeFeed } from '../access/changes.js';
import { metadataPaths, protectedResourceMetadata } from '../auth/index.js';
import type { Authenticator } from '../auth/types.js';
import { type CallQuota, ConcurrencyLimiter } from '../cluster/concurrency.js';
import type { RateLimiter } from '../cluster/rateLimiter.js';
import type { Config } from '../config/schema.js';
import { McpdError } from '../errors.js';
import { toolCatalog } from '../mcp/catalog.js';
import type { McpServices } from '../mcp/context.js';
import { logInternalErrors } from '../mcp/errors.js';
import { serverInfo } from '../mcp/server.js';
import type { TaskRunner } from '../mcp/tasks.js';
import { InFlight } from '../ops/inflight.js';
import type { Readiness } from '../ops/lifecycle.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { Tracing } from '../ops/tracing.js';
import { pause } from '../slices.js';
import { Admission, assignRequestId, type EdgeRefusal, userAgentOf } from './admission.js';
import type { InFlightCalls } from './cancellation.js';
import { type ExchangeDeps, type InitializeEvent, readMessage, serveExchange } from './mcpExchange.js';
import { perConfig } from './perConfig.js';
import type { ReferenceHandler } from './referenceHandler.js';
import { sendError, sendJson } from './respond.js';

export type { EdgeRefusal } from './admission.js';

export const MCP_PATH = '/mcp';

/** Where the protected-resource metadata is served; looked at on every request, derived once. */
const metadataPathsOf = perConfig((config) => metadataPaths(config.server.publicUrl));

/**
 * What the edge needs from the current runtime: read once per request, so a reload applies to the
 * requests that start after it and never lands in the middle of one.
 */
export interface EdgeRuntime extends McpServices {
  readonly authenticator: Authenticator;
}

export interface HttpEdgeOptions {
  /** Bind address and port: fixed for the life of the process. */
  readonly host: string;
  readonly port: number;
  readonly runtime: () => EdgeRuntime;
  /** The SDK's handler, for what the fast path does not answer. */
  readonly reference: ReferenceHandler;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly version: string;
  /** Calls a 2025-era client may cancel by id. */
  readonly calls: InFlightCalls;
  readonly rateLimiter: RateLimiter;
  /** Calls in progress per process and per principal (shared across replicas when cluster.redis is set). */
  readonly callQuota: CallQuota;
  /** Long calls as tasks for clients that declare the Tasks extension. */
  readonly tasks?: TaskRunner;
  /** Changes to roots, for the listen streams the edge serves itself (those that follow tasks). */
  readonly changes?: ChangeFeed;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
  readonly onRefusal: (refusal: EdgeRefusal) => void;
  readonly onInitialize: (event: InitializeEvent) => void;
}

/**
 * The node:http(s) edge: probes, metrics and OAuth metadata, then /mcp: admission (Host, Origin,
 * credentials, limits) and the exchange itself behind the endpoint seam, observed and written
 * under backpressure. It owns the drain; readiness is the lifecycle's, the order is app/http.ts's.
 */
export class HttpEdge {
  readonly server: Server | HttpsServer;
  private readonly inFlight = new InFlight<ServerResponse>();
  private readonly admission: Admission;
  private readonly exchange: ExchangeDeps;
  private draining = false;
  private listenerClosed: Promise<void> | undefined;

  constructor(private readonly options: HttpEdgeOptions) {
    const { config } = options.runtime();
    this.admission = new Admission({
      bindHost: options.host,
      rateLimiter: options.rateLimiter,
      calls: options.callQuota,
      streams: new ConcurrencyLimiter(),
      metrics: options.metrics,
      logger: options.logger,
      onRefusal: options.onRefusal,
    });
    this.exchange = {
      reference: options.reference,
      fastPath: {
        catalog: toolCatalog(serverInfo(options.version)),
        server: serverInfo(options.version),
        ...(options.tasks ? { tasks: options.tasks } : {}),
        ...(options.changes ? { changes: options.changes } : {}),
      },
      calls: options.calls,
      cancelAll: options.cancelAll,
      onInitialize: options.onInitialize,
      reportInternal: logInternalErrors(options.logger),
      metrics: options.metrics,
      tracing: options.tracing,
      logger: options.logger,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.route(req, res).catch((error: unknown) => {
        // A client that hung up mid-request is an ordinary event, not a server failure.
        if (clientWentAway(error, req, res)) {
          options.logger.debug({ code: (error as NodeJS.ErrnoException).code }, 'client disconnected mid-request');
          res.destroy();
          return;
        }
        options.logger.error({ err: error }, 'unhandled error at the HTTP edge');
        if (!res.headersSent) sendError(res, new McpdError('INTERNAL', 'internal error'));
        else res.destroy();
      });
    };
    const tls = config.server.tls;
    this.server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createHttpServer(handler);
    this.server.keepAliveTimeout = config.server.keepAliveTimeoutMs;
    this.server.headersTimeout = config.server.headersTimeoutMs;
    this.server.requestTimeout = config.server.requestTimeoutMs;
  }

  get scheme(): 'http' | 'https' {
    return 'setSecureContext' in this.server ? 'https' : 'http';
  }

  async listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.host, this.options.port);
  }

  /** New TLS material (a reload); connections already open keep theirs. */
  updateTls(tls: { cert: string; key: string }): void {
    if ('setSecureContext' in this.server) this.server.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Stops taking work: the listener closes at once, so a new connection is refused and a load
   * balancer moves it to another replica before anything was sent (nginx does so for every
   * request, writes included, since none reached a replica), and a probe sees the port shut. Idle
   * keep-alive connections are dropped; a request that was already on its way over one gets 503
   * with Connection: close, nothing run. Resolves when the exchanges in flight have finished, or
   * after `graceMs`, whichever is first.
   */
  async drain(graceMs: number): Promise<{ unfinished: number }> {
    this.stopListening();
    const { remaining } = await this.inFlight.whenEmpty(graceMs);
    return { unfinished: remaining };
  }

  /** Waits (up to `ms`) for the exchanges still open to finish writing; used after cancelling them. */
  async settle(ms: number): Promise<void> {
    await this.inFlight.whenEmpty(ms);
  }

  /** Ends whatever connections remain (after the endpoint closed its streams), the listener with them. */
  close(): Promise<void> {
    const closed = this.stopListening();
    this.server.closeAllConnections();
    return closed;
  }

  /** Closes the listener and drops the idle connections, once; resolves when every connection ended. */
  private stopListening(): Promise<void> {
    this.draining = true;
    this.listenerClosed ??= new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return this.listenerClosed;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Nearly every request is a bare `/mcp`: a URL is parsed only for anything else.
    const target = req.url ?? '/';
    const url = target === MCP_PATH ? undefined : new URL(target, 'http://edge.invalid');
    const path = url ? url.pathname : MCP_PATH;
    const runtime = this.options.runtime();
    const { config, authenticator } = runtime;
    // Draining: every answer closes its connection, so none stays open once the listener is shut.
    if (this.draining) res.setHeader('connection', 'close');
    if (path === '/health') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/ready') {
      const reason = await this.options.readiness.notReadyReason();
      sendJson(
        res,
        reason === null ? 200 : 503,
        reason === null ? { status: 'ready' } : { status: 'not ready', reason },
      );
      return;
    }
    if (metadataPathsOf(config).includes(path)) {
      this.serveMetadata(req, res, config);
      return;
    }
    if (config.metrics.enabled && config.metrics.port === undefined && path === config.metrics.path) {
      // On the main port, metrics sit behind the same guards and authentication as /mcp, refusals audited.
      const requestId = assignRequestId(req, res, config);
      const admitted = await this.admission.admit(req, res, url, requestId, config, authenticator, path);
      if (admitted) await serveMetrics(res, this.options.metrics);
      return;
    }
    if (path !== MCP_PATH) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const requestId = assignRequestId(req, res, config);
    if (this.draining) {
      this.admission.refuseDraining(req, res, requestId);
      return;
    }
    const admitted = await this.admission.admit(req, res, url, requestId, config, authenticator);
    if (!admitted) return;
    // In flight from here (reading the body counts), unless the body turns out to open a stream.
    this.track(res);
    const message = await readMessage(req, res, config, this.options.metrics);
    if (!message) return;
    // Requests that arrive together are handled together: past the loop's slice, the rest wait for
    // the next turn (after the loop polls again, so /health is never queued behind a burst).
    const turn = pause();
    if (turn) await turn;
    // Limits are decided from the parsed body, never from a header a client may set at will.
    const listen = message.summary.method === 'subscriptions/listen';
    if (listen) this.inFlight.delete(res);
    const release = await this.admission.limit(
      res,
      admitted,
      { calls: message.calls, listen },
      config,
      userAgentOf(req),
    );
    if (!release) return;
    try {
      await serveExchange(req, res, admitted, message, runtime, this.exchange);
    } finally {
      release();
    }
  }

  private serveMetadata(req: IncomingMessage, res: ServerResponse, config: Config): void {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, OPTIONS' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      res.end();
      return;
    }
    const scopes = config.grants === null ? null : config.grants.flatMap((grant) => grant.scopes);
    const metadata = protectedResourceMetadata(config.auth, config.server.publicUrl, scopes);
    if (!metadata) {
      sendJson(res, 404, { error: 'not an OAuth protected resource (auth.mode is not jwt)' });
      return;
    }
    sendJson(res, 200, metadata, cors);
  }

  private track(res: ServerResponse): void {
    if (this.draining) res.setHeader('connection', 'close');
    this.inFlight.add(res);
    res.once('close', () => {
      this.inFlight.delete(res);
      // A connection whose exchange began before the drain is kept alive by nothing once it ends.
      if (this.draining) this.server.closeIdleConnections();
    });
  }
}

const DISCONNECT_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED',
  'ECONNABORTED',
]);

/** Whether `error` is the client closing its connection (before or while it was answered). */
function clientWentAway(error: unknown, req: IncomingMessage, res: ServerResponse): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && DISCONNECT_CODES.has(code)) return true;
  return req.destroyed || res.destroyed || (error as Error | undefined)?.message === 'aborted';
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

async function serveMetrics(res: ServerResponse, metrics: Metrics): Promise<void> {
  const { contentType, body } = await metrics.render();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

/** A listener for /metrics alone, unauthenticated, for Prometheus to scrape (metrics.port). */
export class MetricsListener {
  private readonly server: Server;

  constructor(
    private readonly host: string,
    private readonly port: number,
    path: string,
    metrics: Metrics,
  ) {
    this.server = createHttpServer((req, res) => {
      if (new URL(req.url ?? '/', 'http://metrics.invalid').pathname !== path) {
        sendJson(res, 404, { error: 'not found' });
        return;
      }
      void serveMetrics(res, metrics);
    });
  }

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.host, this.port);
  }

  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }
}
