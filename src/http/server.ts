import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostHeaderValidation, originValidation, toWebRequest } from '@modelcontextprotocol/node';
import { localhostAllowedHostnames } from '@modelcontextprotocol/server';
import { challengeHeader, metadataUrlFor, protectedResourceMetadata } from '../auth/index.js';
import type { Authenticator } from '../auth/types.js';
import type { RateLimiter } from '../cluster/rateLimiter.js';
import type { Config } from '../config/schema.js';
import { ERROR_CATALOGUE } from '../errors.js';
import { type McpEndpoint, REQUEST_ID_HEADER } from '../mcp/endpoint.js';
import { EXCHANGE_HEADER, type FlowRegistry } from '../mcp/flow.js';
import { InFlight } from '../ops/inflight.js';
import type { Readiness } from '../ops/lifecycle.js';
import type { Logger } from '../ops/logger.js';
import type { Principal } from '../policy/types.js';
import { ConcurrencyLimiter } from './concurrency.js';
import { responseFlow, sendResponse } from './respond.js';

export const MCP_PATH = '/mcp';
const METADATA_PATH = '/.well-known/oauth-protected-resource';

/** A request id we accept from a client or proxy; anything else is replaced, never echoed. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Query parameters that would carry a credential in a URL, where it ends up in logs. */
const TOKEN_QUERY_PARAMETERS = ['access_token', 'token', 'api_key', 'apikey', 'key'];

/** What the edge needs from the current runtime; read per request, so reloads apply to new ones. */
export interface EdgeRuntime {
  readonly config: Config;
  readonly authenticator: Authenticator;
}

/** A request turned away before it reached MCP, for the audit log. */
export interface EdgeRefusal {
  readonly requestId: string;
  readonly principal: string;
  readonly rule: string;
  readonly reason: string;
  readonly status: number;
}

export interface HttpEdgeOptions {
  /** Bind address and port: fixed for the life of the process. */
  readonly host: string;
  readonly port: number;
  readonly runtime: () => EdgeRuntime;
  readonly endpoint: McpEndpoint;
  readonly flows: FlowRegistry;
  readonly rateLimiter: RateLimiter;
  readonly readiness: Readiness;
  readonly logger: Logger;
  readonly onRefusal: (refusal: EdgeRefusal) => void;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function jsonRpcError(code: number, message: string) {
  return { jsonrpc: '2.0', error: { code, message }, id: null };
}

/**
 * The node:http(s) edge: probes and metadata, request ids, Host and Origin checks, the body limit,
 * authentication, rate and concurrency limits, then MCP behind the endpoint seam, with responses
 * written under backpressure. It also owns the drain: readiness is the lifecycle's, the order is
 * app.ts's.
 */
export class HttpEdge {
  readonly server: Server | HttpsServer;
  private readonly inFlight = new InFlight<ServerResponse>();
  private readonly concurrency = new ConcurrencyLimiter();
  private openStreams = 0;
  private draining = false;

  constructor(private readonly options: HttpEdgeOptions) {
    const { config } = options.runtime();
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.route(req, res).catch((error: unknown) => {
        options.logger.error({ err: error }, 'unhandled error at the HTTP edge');
        if (!res.headersSent) sendJson(res, 500, jsonRpcError(ERROR_CATALOGUE.INTERNAL.jsonRpc, 'internal error'));
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
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** New TLS material (a reload); connections already open keep theirs. */
  updateTls(tls: { cert: string; key: string }): void {
    if ('setSecureContext' in this.server) this.server.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Stops taking work while still answering: /ready says 503 (the lifecycle's part), new MCP
   * requests get 503 with Connection: close, idle keep-alive connections are dropped. Resolves
   * when the exchanges already in flight have finished, or after `graceMs`, whichever is first.
   * The listener stays open meanwhile, so probes and load balancers see the 503s.
   */
  async drain(graceMs: number): Promise<{ unfinished: number }> {
    this.draining = true;
    this.server.closeIdleConnections();
    const { remaining } = await this.inFlight.whenEmpty(graceMs);
    return { unfinished: remaining };
  }

  /** Waits (up to `ms`) for the exchanges still open to finish writing; used after cancelling them. */
  async settle(ms: number): Promise<void> {
    await this.inFlight.whenEmpty(ms);
  }

  /** Closes the listener and ends whatever connections remain (after the endpoint closed its streams). */
  close(): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return closed;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://edge.invalid');
    const path = url.pathname;
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
    if (path === METADATA_PATH || path === `${METADATA_PATH}${MCP_PATH}`) {
      this.serveMetadata(req, res);
      return;
    }
    if (path !== MCP_PATH) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    await this.serveMcp(req, res, url);
  }

  private serveMetadata(req: IncomingMessage, res: ServerResponse): void {
    const { config } = this.options.runtime();
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, OPTIONS' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      res.end();
      return;
    }
    const scopes = (config.grants ?? []).flatMap((grant) => grant.scopes);
    const metadata = protectedResourceMetadata(config.auth, config.server.publicUrl, scopes);
    if (!metadata) {
      sendJson(res, 404, { error: 'not an OAuth protected resource (auth.mode is not jwt)' });
      return;
    }
    sendJson(res, 200, metadata, cors);
  }

  private refuse(res: ServerResponse, refusal: EdgeRefusal, body: unknown, headers: Record<string, string> = {}): void {
    this.options.onRefusal(refusal);
    sendJson(res, refusal.status, body, headers);
  }

  private async serveMcp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { config, authenticator } = this.options.runtime();
    const limits = config.limits;
    const supplied = req.headers[REQUEST_ID_HEADER];
    const requestId = typeof supplied === 'string' && REQUEST_ID_PATTERN.test(supplied) ? supplied : randomUUID();
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    if (this.draining) {
      const reason = 'server is shutting down; retry on another instance';
      this.refuse(
        res,
        { requestId, principal: 'unauthenticated', rule: 'lifecycle:draining', reason, status: 503 },
        jsonRpcError(ERROR_CATALOGUE.UNAVAILABLE.jsonRpc, reason),
        { connection: 'close', 'retry-after': '1' },
      );
      return;
    }

    // DNS rebinding: a browser page must not reach a local server through a name it controls.
    const loopback = localhostAllowedHostnames();
    const allowedHosts = [...loopback, this.options.host, ...config.server.allowedHosts];
    if (!hostHeaderValidation(allowedHosts)(req, res)) return;
    if (!originValidation([...loopback, ...config.server.allowedOrigins])(req, res)) return;

    // A credential in a URL ends up in every log on its way: refuse it outright (RFC 6750 5.3).
    if (TOKEN_QUERY_PARAMETERS.some((name) => url.searchParams.has(name))) {
      const description = 'credentials must not be sent in the query string; use the Authorization header';
      this.refuse(
        res,
        { requestId, principal: 'unauthenticated', rule: 'auth:token-in-query', reason: description, status: 400 },
        { error: 'invalid_request', error_description: description },
        {
          'www-authenticate': challengeHeader(config.auth, config.server.publicUrl, {
            code: 'invalid_request',
            description,
          }),
        },
      );
      return;
    }

    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > config.server.maxBodyBytes) {
      sendJson(
        res,
        413,
        jsonRpcError(-32000, `request body of ${declared} bytes exceeds the ${config.server.maxBodyBytes}-byte limit`),
        { connection: 'close' },
      );
      req.resume();
      return;
    }

    const auth = await authenticator.authenticate(req.headers.authorization);
    if (!auth.ok) {
      this.refuse(
        res,
        { requestId, principal: 'unauthenticated', rule: auth.rule, reason: auth.description, status: auth.status },
        { error: auth.code ?? 'unauthorized', error_description: auth.description },
        {
          'www-authenticate': challengeHeader(config.auth, config.server.publicUrl, {
            ...(auth.code ? { code: auth.code } : {}),
            description: auth.description,
          }),
        },
      );
      return;
    }
    const principal = auth.principal;

    const rate = await this.options.rateLimiter.take(principal.id, limits.rateLimit.perSecond, limits.rateLimit.burst);
    if (!rate.ok) {
      this.tooMany(
        res,
        requestId,
        principal,
        'limit:rate',
        'request rate limit reached',
        Math.ceil(rate.retryAfterMs / 1000),
      );
      return;
    }
    const listen = req.headers['mcp-method'] === 'subscriptions/listen';
    if (listen && this.openStreams >= limits.maxSubscriptionStreams) {
      this.tooMany(res, requestId, principal, 'limit:streams', 'too many open subscription streams', 5);
      return;
    }
    // A subscription stream is counted by the stream cap alone: it is open for hours, not in progress.
    const slot = listen
      ? { release() {} }
      : this.concurrency.acquire(principal.id, limits.maxConcurrentRequests, limits.maxConcurrentPerPrincipal);
    if (!slot) {
      this.tooMany(res, requestId, principal, 'limit:concurrency', 'too many requests in progress', 1);
      return;
    }

    const exchangeId = randomUUID();
    req.headers[EXCHANGE_HEADER] = exchangeId;
    const unregister = this.options.flows.register(exchangeId, responseFlow(res));
    if (listen) this.openStreams += 1;
    else this.track(res);
    res.once('close', () => {
      slot.release();
      unregister();
      if (listen) this.openStreams -= 1;
    });

    const abort = new AbortController();
    res.once('close', () => abort.abort());
    let request: Request;
    try {
      request = await toWebRequest(req, undefined, {
        signal: abort.signal,
        maxRequestBodySize: config.server.maxBodyBytes,
      });
    } catch (error) {
      if ((error as { status?: number }).status === 413) {
        sendJson(res, 413, jsonRpcError(-32000, `request body exceeds the ${config.server.maxBodyBytes}-byte limit`), {
          connection: 'close',
        });
        return;
      }
      throw error;
    }
    const response = await this.options.endpoint.fetch(request, {
      principal: authenticator.mode === 'none' ? null : principal,
      ...(auth.expiresAt === undefined ? {} : { expiresAt: auth.expiresAt }),
      ...(config.auth.mode === 'jwt' ? { resourceMetadataUrl: metadataUrlFor(config.server.publicUrl) } : {}),
    });
    await sendResponse(res, response, {
      headers: { [REQUEST_ID_HEADER]: requestId },
      stallTimeoutMs: limits.sseStallTimeoutMs,
      onStall: () =>
        this.options.logger.warn({ requestId, principal: principal.id }, 'SSE client stopped reading; disconnected'),
    });
  }

  private tooMany(
    res: ServerResponse,
    requestId: string,
    principal: Principal,
    rule: string,
    reason: string,
    retryAfterSec: number,
  ): void {
    this.options.logger.info({ requestId, principal: principal.id, rule }, reason);
    sendJson(res, 429, jsonRpcError(-32000, `${reason}; retry later`), {
      'retry-after': String(Math.max(1, retryAfterSec)),
    });
  }

  private track(res: ServerResponse): void {
    if (this.draining) res.setHeader('connection', 'close');
    this.inFlight.add(res);
    res.once('close', () => this.inFlight.delete(res));
  }
}
