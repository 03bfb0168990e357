import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import proxyAddr from 'proxy-addr';
import { metadataUrlFor } from '../auth/index.js';
import type { Config } from '../config/schema.js';
import { McpdError } from '../errors.js';
import { type McpEndpoint, REQUEST_ID_HEADER } from '../mcp/endpoint.js';
import { callsOf, type MessageSummary, summarizeMessage } from '../mcp/envelope.js';
import { EXCHANGE_HEADER, type Exchange, type ExchangeRegistry } from '../mcp/exchange.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { context, SpanStatusCode, type Tracing } from '../ops/tracing.js';
import type { Principal } from '../policy/types.js';
import type { Admitted } from './admission.js';
import { proxyTrust, userAgentOf } from './admission.js';
import type { InFlightCalls } from './cancellation.js';
import { responseFlow, sendError, sendResponse } from './respond.js';

/** A 2025-era initialize the edge saw answered: who the client said it was, for the audit log. */
export interface InitializeEvent {
  readonly requestId: string;
  readonly principal: Principal;
  readonly client: string | null;
  readonly clientVersion: string | null;
  readonly userAgent: string | null;
  readonly protocolVersion: string | null;
  readonly ok: boolean;
}

export interface ExchangeDeps {
  readonly endpoint: McpEndpoint;
  readonly calls: InFlightCalls;
  readonly onInitialize: (event: InitializeEvent) => void;
  readonly exchanges: ExchangeRegistry;
  readonly metrics: Metrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
}

/** Reads a request body up to `max` bytes; undefined when it is longer (the caller answers 413). */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function webHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  return headers;
}

function parse(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** One request to /mcp, read and parsed once: what the limits, the span and the log are decided from. */
export interface McpMessage {
  readonly body: Buffer;
  /** The parsed JSON body; undefined when it is not JSON (the endpoint answers the parse error). */
  readonly parsed: unknown;
  readonly summary: MessageSummary;
  /** The JSON-RPC requests it carries, by method and tool. */
  readonly calls: readonly string[];
}

/**
 * Reads and parses the body of an admitted request, up to the size limit; undefined once it is
 * answered with 413 for being longer.
 */
export async function readMessage(
  req: IncomingMessage,
  res: ServerResponse,
  config: Config,
  metrics: Metrics,
): Promise<McpMessage | undefined> {
  const body = req.method === 'POST' ? await readBody(req, config.server.maxBodyBytes) : Buffer.alloc(0);
  if (body === undefined) {
    metrics.rejected.inc({ reason: 'body_too_large' });
    sendError(res, new McpdError('TOO_LARGE', `request body exceeds the ${config.server.maxBodyBytes}-byte limit`), {
      connection: 'close',
    });
    return undefined;
  }
  const parsed = parse(body);
  const summary: MessageSummary =
    req.method === 'POST'
      ? summarizeMessage(parsed)
      : {
          // GET (the 405 of a server with no standalone stream) and DELETE are labelled as such.
          method: req.method === 'GET' || req.method === 'DELETE' ? req.method : 'other',
          tool: null,
          id: null,
          protocolVersion: null,
          trace: undefined,
          client: null,
        };
  return { body, parsed, summary, calls: req.method === 'POST' ? callsOf(parsed) : [] };
}

/**
 * One admitted MCP exchange, observed: the message read once (the SDK reuses the parse) is
 * summarised for the span, the metrics and the one log line; the SERVER span is active while the
 * endpoint serves, so the layers below open child spans; the outcome comes back from the exchange
 * record the MCP layer fills in.
 */
export async function serveExchange(
  req: IncomingMessage,
  res: ServerResponse,
  admitted: Admitted,
  message: McpMessage,
  config: Config,
  deps: ExchangeDeps,
): Promise<void> {
  const started = performance.now();
  const { requestId, principal } = admitted;
  const { body, parsed, summary } = message;
  const userAgent = userAgentOf(req);

  const exchangeId = randomUUID();
  req.headers[EXCHANGE_HEADER] = exchangeId;
  const exchange: Exchange = { flow: responseFlow(res) };
  const unregister = deps.exchanges.register(exchangeId, exchange);

  const protocolVersion = summary.protocolVersion ?? (req.headers['mcp-protocol-version'] as string | undefined);
  const { span, context: spanContext } = deps.tracing.startServerSpan(
    summary.tool ? `${summary.method} ${summary.tool}` : summary.method,
    {
      'mcp.method.name': summary.method,
      ...(summary.tool ? { 'gen_ai.tool.name': summary.tool } : {}),
      ...(protocolVersion ? { 'mcp.protocol.version': protocolVersion } : {}),
      ...(summary.id !== null ? { 'jsonrpc.request.id': String(summary.id) } : {}),
      'client.address': proxyAddr(req, proxyTrust(config)),
      'network.protocol.name': 'http',
      'mcpd.request.id': requestId,
    },
    {
      ...(summary.trace ? { meta: summary.trace } : {}),
      header: {
        ...(typeof req.headers.traceparent === 'string' ? { traceparent: req.headers.traceparent } : {}),
        ...(typeof req.headers.tracestate === 'string' ? { tracestate: req.headers.tracestate } : {}),
      },
    },
  );

  deps.metrics.inFlight.inc();
  let streaming = false;
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  const unregisterCall =
    summary.id !== null && summary.method !== 'subscriptions/listen'
      ? deps.calls.register(principal.id, userAgent, summary.id, abort)
      : () => {};
  if (summary.cancels !== undefined) deps.calls.cancel(principal.id, userAgent, summary.cancels);
  const finished = new Promise<void>((resolve) => res.once('close', () => resolve()));
  try {
    const request = new Request(new URL(req.url ?? '/', 'http://mcpd.invalid'), {
      method: req.method ?? 'POST',
      headers: webHeaders(req),
      ...(req.method === 'POST' || req.method === 'PUT' ? { body } : {}),
      signal: abort.signal,
    });
    await context.with(spanContext, async () => {
      const response = await deps.endpoint.fetch(
        request,
        {
          principal: config.auth.mode === 'none' ? null : principal,
          ...(admitted.auth.expiresAt === undefined ? {} : { expiresAt: admitted.auth.expiresAt }),
          ...(config.auth.mode === 'jwt' ? { resourceMetadataUrl: metadataUrlFor(config.server.publicUrl) } : {}),
        },
        parsed,
      );
      streaming = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
      if (streaming) deps.metrics.sseStreams.inc();
      await sendResponse(res, response, {
        headers: { [REQUEST_ID_HEADER]: requestId },
        stallTimeoutMs: config.limits.sseStallTimeoutMs,
        onStall: () =>
          deps.logger.warn({ requestId, principal: principal.id }, 'SSE client stopped reading; disconnected'),
      });
    });
  } finally {
    await finished;
    unregister();
    unregisterCall();
    deps.metrics.inFlight.dec();
    if (streaming) deps.metrics.sseStreams.dec();
    const status = res.statusCode;
    if (summary.method === 'initialize') {
      deps.onInitialize({
        requestId,
        principal,
        client: summary.client?.name ?? userAgent,
        clientVersion: summary.client?.version ?? null,
        userAgent,
        protocolVersion: summary.protocolVersion,
        ok: status < 400,
      });
    }
    const errorType = exchange.errorType ?? (status >= 400 ? String(status) : undefined);
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.operationDuration.observe(
      { mcp_method_name: summary.method, gen_ai_tool_name: summary.tool ?? '', error_type: errorType ?? '' },
      seconds,
    );
    if (errorType) {
      span.setAttribute('error.type', errorType);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.setAttribute('http.response.status_code', status);
    span.end();
    deps.logger.info(
      {
        requestId,
        method: summary.method,
        tool: summary.tool,
        status,
        durationMs: Math.round(seconds * 100_000) / 100,
        principal: principal.id,
        client: summary.client?.name ?? userAgent,
        ...(summary.client?.version ? { clientVersion: summary.client.version } : {}),
        ...(errorType ? { errorType } : {}),
        ...(deps.tracing.enabled ? { traceId: span.spanContext().traceId } : {}),
      },
      'request',
    );
  }
}
