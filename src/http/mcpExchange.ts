import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { finished } from 'node:stream';
import proxyAddr from 'proxy-addr';
import { metadataUrlFor } from '../auth/index.js';
import type { Config } from '../config/schema.js';
import { McpdError } from '../errors.js';
import type { McpServices, Outcome, RequestContext } from '../mcp/context.js';
import { callsOf, type MessageSummary, summarizeMessage } from '../mcp/envelope.js';
import type { InternalErrorReporter } from '../mcp/errors.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { context as otelContext, SpanStatusCode, type Tracing } from '../ops/tracing.js';
import type { Principal } from '../policy/types.js';
import type { Admitted } from './admission.js';
import { proxyTrust, REQUEST_ID_HEADER, userAgentOf } from './admission.js';
import type { InFlightCalls } from './cancellation.js';
import { answer, type FastPathOptions, fastRequest } from './fastPath.js';
import { type ReferenceHandler, webRequest } from './referenceHandler.js';
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
  readonly reference: ReferenceHandler;
  readonly fastPath: FastPathOptions;
  readonly calls: InFlightCalls;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly onInitialize: (event: InitializeEvent) => void;
  readonly reportInternal: InternalErrorReporter;
  readonly metrics: Metrics;
  readonly tracing: Tracing;
  readonly logger: Logger;
}

/**
 * Reads a request body up to `max` bytes; undefined when it is longer (the caller answers 413).
 * Events, not an async iterator: a small body is one chunk, and the iterator's promise per chunk
 * costs more than the read.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const onData = (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > max) {
        // The rest is drained, not kept, so the connection can still carry the 413.
        tooLarge = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    // The same end-of-stream rules as reading with an async iterator: an error, or a close before
    // the end, rejects.
    finished(req, (error) => {
      req.off('data', onData);
      if (error) reject(error);
      else if (tooLarge) resolve(undefined);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    });
  });
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
  return { body, parsed, summary, calls: req.method === 'POST' ? callsOf(parsed, summary) : [] };
}

/**
 * One admitted MCP exchange, observed: the message read once is summarised for the span, the
 * metrics and the one log line; the request's context is made once (the one read of the runtime);
 * the fast path answers what it can, the reference handler the rest; the SERVER span is active
 * meanwhile, so the layers below open child spans; the outcome comes back in the context.
 */
export async function serveExchange(
  req: IncomingMessage,
  res: ServerResponse,
  admitted: Admitted,
  message: McpMessage,
  runtime: McpServices,
  deps: ExchangeDeps,
): Promise<void> {
  const started = performance.now();
  const { config } = runtime;
  const { requestId, principal } = admitted;
  const { parsed, summary } = message;
  const userAgent = userAgentOf(req);

  // The client went away before its answer was written: whatever still runs for it stops. (An
  // answer written in full aborts nothing: an abort is not free, and nothing is left to stop.)
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const context: RequestContext = {
    services: runtime,
    principal,
    requestId,
    transport: 'http',
    userAgent,
    signal: abort.signal,
    cancelAll: deps.cancelAll,
    flow: responseFlow(res),
    outcome: {},
    reportInternal: deps.reportInternal,
  };
  const fast =
    req.method === 'POST' && config.server.fastPath
      ? fastRequest(req, parsed, runtime, context, deps.fastPath)
      : undefined;

  // With tracing off, no span, no context switch, no attributes computed.
  const traced = deps.tracing.enabled ? serverSpan(req, summary, requestId, config, deps.tracing) : undefined;

  deps.metrics.inFlight.inc();
  let streaming = false;
  const onStream = () => {
    streaming = true;
    deps.metrics.sseStreams.inc();
  };
  // A 2025-era client cancels by id in a request of its own; a 2026-07-28 one closes the stream.
  const unregisterCall =
    summary.id !== null && summary.method !== 'subscriptions/listen' && fast?.era !== 'modern'
      ? deps.calls.register(principal.id, userAgent, summary.id, abort)
      : () => {};
  if (summary.cancels !== undefined) deps.calls.cancel(principal.id, userAgent, summary.cancels);
  const finished = new Promise<void>((resolve) => res.once('close', () => resolve()));
  const onStall = () =>
    deps.logger.warn({ requestId, principal: principal.id }, 'SSE client stopped reading; disconnected');
  try {
    const serve = async () => {
      if (fast) {
        await answer(res, fast, context, {
          headers: { [REQUEST_ID_HEADER]: requestId },
          keepAliveMs: config.server.sseKeepAliveMs,
          stallTimeoutMs: config.limits.sseStallTimeoutMs,
          onStall,
          onStream,
          onInternalError: (error) => context.reportInternal(error, requestId),
        });
        return;
      }
      const auth = {
        authenticated: config.auth.mode !== 'none',
        ...(admitted.auth.expiresAt === undefined ? {} : { expiresAt: admitted.auth.expiresAt }),
        ...(config.auth.mode === 'jwt' ? { resourceMetadataUrl: metadataUrlFor(config.server.publicUrl) } : {}),
        publicUrl: config.server.publicUrl,
      };
      const response = await deps.reference.fetch(webRequest(req, message.body, abort.signal), context, auth, parsed);
      if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) onStream();
      await sendResponse(res, response, {
        headers: { [REQUEST_ID_HEADER]: requestId },
        stallTimeoutMs: config.limits.sseStallTimeoutMs,
        onStall,
      });
    };
    await (traced ? otelContext.with(traced.context, serve) : serve());
  } finally {
    await finished;
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
    const errorType = context.outcome.errorType ?? (status >= 400 ? String(status) : undefined);
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.operationDuration.observe(
      { mcp_method_name: summary.method, gen_ai_tool_name: summary.tool ?? '', error_type: errorType ?? '' },
      seconds,
    );
    if (errorType) {
      deps.metrics.requestErrors.inc({
        mcp_method_name: summary.method,
        code: failureCode(context.outcome, errorType, status),
      });
    }
    if (traced) {
      if (errorType) {
        traced.span.setAttribute('error.type', errorType);
        traced.span.setStatus({ code: SpanStatusCode.ERROR });
      }
      traced.span.setAttribute('http.response.status_code', status);
      traced.span.end();
    }
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
        ...(traced ? { traceId: traced.span.spanContext().traceId } : {}),
        ...(fast ? {} : { path: 'reference' }),
      },
      'request',
    );
  }
}

/** The code a failed exchange is counted under: the catalogue's when there is one, else what the wire says. */
function failureCode(outcome: Outcome, errorType: string, status: number): string {
  if (outcome.errorCode !== undefined) return outcome.errorCode;
  if (errorType.startsWith('-')) return `JSONRPC_${errorType}`;
  return errorType === 'tool_error' ? 'TOOL_ERROR' : `HTTP_${status}`;
}

/** The SERVER span of an exchange, parented on the trace context its envelope or headers carry. */
function serverSpan(
  req: IncomingMessage,
  summary: MessageSummary,
  requestId: string,
  config: Config,
  tracing: Tracing,
) {
  const protocolVersion = summary.protocolVersion ?? (req.headers['mcp-protocol-version'] as string | undefined);
  return tracing.startServerSpan(
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
}
