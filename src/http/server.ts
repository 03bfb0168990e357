import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostHeaderValidation, originValidation, toNodeHandler } from '@modelcontextprotocol/node';
import { localhostAllowedHostnames } from '@modelcontextprotocol/server';
import { ERROR_CATALOGUE } from '../errors.js';
import { type McpEndpoint, REQUEST_ID_HEADER } from '../mcp/endpoint.js';
import type { Readiness } from '../ops/lifecycle.js';
import type { Logger } from '../ops/logger.js';

export const MCP_PATH = '/mcp';

/** A request id we accept from a client or proxy; anything else is replaced, never echoed. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export interface HttpEdgeOptions {
  readonly host: string;
  readonly port: number;
  readonly allowedHosts: readonly string[];
  readonly allowedOrigins: readonly string[];
  readonly maxBodyBytes: number;
  readonly endpoint: McpEndpoint;
  readonly readiness: Readiness;
  readonly logger: Logger;
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

function jsonRpcError(status: number, code: number, message: string) {
  return [status, { jsonrpc: '2.0', error: { code, message }, id: null }] as const;
}

/**
 * The node:http edge: probes, request ids, Host and Origin checks, the body limit, and SSE
 * responses that proxies must not buffer. MCP itself is behind the endpoint seam.
 */
export class HttpEdge {
  readonly server: Server;
  /** MCP exchanges in progress, not counting subscription streams (those are closed, not awaited). */
  private readonly inFlight = new Set<ServerResponse>();
  private draining = false;
  private drained: (() => void) | undefined;
  private readonly validateHost: ReturnType<typeof hostHeaderValidation>;
  private readonly validateOrigin: ReturnType<typeof originValidation>;
  private readonly mcp: ReturnType<typeof toNodeHandler>;

  constructor(private readonly options: HttpEdgeOptions) {
    const loopback = localhostAllowedHostnames();
    // The bound address is a name clients legitimately use (127.0.0.2, say), besides the loopback names.
    this.validateHost = hostHeaderValidation([...loopback, options.host, ...options.allowedHosts]);
    this.validateOrigin = originValidation([...loopback, ...options.allowedOrigins]);
    const endpoint = options.endpoint;
    this.mcp = toNodeHandler(
      {
        fetch: async (request) => {
          const response = await endpoint.fetch(request);
          const requestId = request.headers.get(REQUEST_ID_HEADER);
          const extra: Record<string, string> = requestId ? { [REQUEST_ID_HEADER]: requestId } : {};
          // nginx (and friends) would otherwise hold SSE events back and deliver them in one burst.
          if (response.headers.get('content-type')?.startsWith('text/event-stream')) extra['x-accel-buffering'] = 'no';
          if (Object.keys(extra).length === 0) return response;
          const headers = new Headers(response.headers);
          for (const [name, value] of Object.entries(extra)) headers.set(name, value);
          return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
        },
      },
      {
        maxRequestBodySize: options.maxBodyBytes,
        onerror: (error) => options.logger.error({ err: error }, 'MCP adapter failure'),
      },
    );
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => {
        options.logger.error({ err: error }, 'unhandled error at the HTTP edge');
        if (!res.headersSent) sendJson(res, ...jsonRpcError(500, ERROR_CATALOGUE.INTERNAL.jsonRpc, 'internal error'));
        else res.destroy();
      });
    });
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

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Stops taking work: the listener closes, idle keep-alive connections are dropped, and any
   * request that still arrives on an open connection is answered 503. Resolves when the exchanges
   * already in flight have finished, or after `graceMs`, whichever is first.
   */
  async drain(graceMs: number): Promise<{ unfinished: number }> {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
    if (this.inFlight.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return { unfinished: this.inFlight.size };
  }

  /** Ends whatever connections remain (after the endpoint has closed its streams). */
  close(): void {
    this.draining = true;
    this.server.close();
    this.server.closeAllConnections();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/ready') {
      const reason = this.options.readiness.notReadyReason();
      sendJson(
        res,
        reason === null ? 200 : 503,
        reason === null ? { status: 'ready' } : { status: 'not ready', reason },
      );
      return;
    }
    if (path !== MCP_PATH) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    await this.serveMcp(req, res);
  }

  private async serveMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.draining) {
      res.setHeader('connection', 'close');
      res.setHeader('retry-after', '1');
      sendJson(res, ...jsonRpcError(503, -32000, 'server is shutting down; retry on another instance'));
      return;
    }
    const supplied = req.headers[REQUEST_ID_HEADER];
    const requestId = typeof supplied === 'string' && REQUEST_ID_PATTERN.test(supplied) ? supplied : randomUUID();
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);

    // DNS rebinding: a browser page must not reach a local server through a name it controls.
    if (!this.validateHost(req, res) || !this.validateOrigin(req, res)) return;

    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.options.maxBodyBytes) {
      res.setHeader('connection', 'close');
      sendJson(
        res,
        ...jsonRpcError(
          413,
          -32000,
          `request body of ${declared} bytes exceeds the ${this.options.maxBodyBytes}-byte limit`,
        ),
      );
      req.resume();
      return;
    }
    if (req.headers['mcp-method'] !== 'subscriptions/listen') this.track(res);
    await this.mcp(req, res);
  }

  private track(res: ServerResponse): void {
    this.inFlight.add(res);
    res.once('close', () => {
      this.inFlight.delete(res);
      if (this.inFlight.size === 0) this.drained?.();
    });
  }
}
