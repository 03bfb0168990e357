import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  classifyInboundRequest,
  isJsonContentType,
  type JSONRPCRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import type { ChangeFeed } from '../access/changes.js';
import type { ToolCatalog } from '../mcp/catalog.js';
import { canonicalRequest } from '../mcp/classify.js';
import type { McpServices, RequestContext } from '../mcp/context.js';
import { type InboundRequest, type Route, route } from '../mcp/dispatch.js';
import type { TaskRunner } from '../mcp/tasks.js';
import {
  type Era,
  errorFrame,
  FIRST_MODERN_REVISION,
  MODERN_REVISIONS,
  notificationFrame,
  resultFrame,
  type ServerInfo,
} from '../mcp/wire.js';
import { StallWatch } from './respond.js';

/**
 * The HTTP face of dispatch: a request this layer can answer exactly as the SDK's reference
 * handler would is answered here, straight onto the node response: JSON, or SSE once the call
 * has something to say before its result (progress), and always SSE for a 2025-era client, as
 * the reference handler does. Which requests qualify is decided from the parsed body and the
 * standard headers before anything runs; everything else goes to the reference handler.
 */

/** A request the fast path will answer, with how. */
export interface FastRequest {
  readonly era: Era;
  readonly id: InboundRequest['id'];
  readonly route: Route;
}

export interface FastPathOptions {
  readonly catalog: ToolCatalog;
  readonly server: ServerInfo;
  /** Long calls as tasks (the Tasks extension), when the process runs them. */
  readonly tasks?: TaskRunner;
  /** Changes to roots, for listen streams that follow tasks (served here). */
  readonly changes?: ChangeFeed;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
};

/** Requests that name what they act on in an Mcp-Name header, and the param it mirrors. */
const NAMED: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'resources/read': 'uri',
  'prompts/get': 'name',
  // The Tasks extension: a balancer may route by the task id.
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

/**
 * Whether the standard headers of a 2026-07-28 request are all there and agree with its body (the
 * reference handler refuses the rest with -32020); an encoded Mcp-Name is left to it as well.
 */
function headersAgree(req: IncomingMessage, request: JSONRPCRequest): boolean {
  if (header(req, 'mcp-protocol-version') === undefined || header(req, 'mcp-method') === undefined) return false;
  const field = NAMED[request.method];
  if (field === undefined) return true;
  const value = (request.params as Record<string, unknown> | undefined)?.[field];
  if (value === undefined) return true;
  const named = header(req, 'mcp-name');
  return named !== undefined && !named.startsWith('=?') && named === value;
}

/**
 * The era of a canonical request (mcp/classify.ts) once HTTP's standard headers are checked
 * against it: the version header may not name a modern revision for a 2025-era body, and must
 * repeat the revision (with Mcp-Method the method) of a 2026-07-28 one.
 */
function canonicalEra(req: IncomingMessage, body: unknown): Era | undefined {
  const canonical = canonicalRequest(body);
  if (!canonical) return undefined;
  const headerVersion = header(req, 'mcp-protocol-version');
  if (canonical.era === 'legacy') {
    return headerVersion !== undefined && headerVersion >= FIRST_MODERN_REVISION ? undefined : 'legacy';
  }
  const method = (body as { method: string }).method;
  return headerVersion === canonical.revision && header(req, 'mcp-method') === method ? 'modern' : undefined;
}

/** The era a request is served in by the fast path, or undefined when the reference handler must answer it. */
function eraOf(req: IncomingMessage, parsed: unknown): Era | undefined {
  if (!isJsonContentType(req.headers['content-type'] ?? null)) return undefined;
  const canonical = canonicalEra(req, parsed);
  if (canonical === 'modern') return headersAgree(req, parsed as JSONRPCRequest) ? 'modern' : undefined;
  if (canonical === 'legacy') return legacyAccepted(req) ? 'legacy' : undefined;
  const protocolVersion = header(req, 'mcp-protocol-version');
  const outcome = classifyInboundRequest({
    httpMethod: 'POST',
    ...(protocolVersion === undefined ? {} : { protocolVersionHeader: protocolVersion }),
    ...(req.headers['mcp-method'] === undefined ? {} : { mcpMethodHeader: header(req, 'mcp-method') }),
    ...(req.headers['mcp-name'] === undefined ? {} : { mcpNameHeader: header(req, 'mcp-name') }),
    body: parsed,
  });
  if (outcome.kind === 'modern') {
    if (outcome.messageKind !== 'request') return undefined;
    const revision = outcome.classification.revision;
    if (revision === undefined || !MODERN_REVISIONS.includes(revision)) return undefined;
    return headersAgree(req, outcome.message as JSONRPCRequest) ? 'modern' : undefined;
  }
  if (outcome.kind !== 'legacy' || outcome.reason !== 'no-claim') return undefined;
  return legacyAccepted(req) ? 'legacy' : undefined;
}

/** The 2025-era transport's own checks, which the reference handler answers when they fail. */
function legacyAccepted(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return false;
  const protocolVersion = header(req, 'mcp-protocol-version');
  return protocolVersion === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion);
}

/**
 * The fast route of a parsed POST body, or undefined. Free of side effects: a request declined
 * here has cost a classification and nothing else.
 */
export function fastRequest(
  req: IncomingMessage,
  parsed: unknown,
  services: McpServices,
  context: Pick<RequestContext, 'principal'>,
  options: FastPathOptions,
): FastRequest | undefined {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const era = eraOf(req, parsed);
  if (era === undefined) return undefined;
  const message = parsed as JSONRPCRequest;
  const inbound: InboundRequest = {
    id: message.id,
    method: message.method,
    params: message.params as Record<string, unknown> | undefined,
  };
  const routed = route(inbound, services, context, {
    era,
    catalog: options.catalog,
    server: options.server,
    ...(options.tasks ? { tasks: options.tasks } : {}),
    ...(options.changes ? { changes: options.changes } : {}),
  });
  return routed && { era, id: message.id, route: routed };
}

export interface AnswerOptions {
  /** Headers every answer carries (the request id). */
  readonly headers: Readonly<Record<string, string>>;
  readonly keepAliveMs: number;
  readonly stallTimeoutMs: number;
  readonly onStall: () => void;
  /** The answer became an event stream. */
  readonly onStream: () => void;
  /** A route that threw (a bug of ours): logged with the request id; the client gets a 500. */
  readonly onInternalError: (error: unknown) => void;
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

/**
 * One SSE response: opened on the first frame, kept alive with comments, cut off when the client
 * stops reading, every write honouring the socket's backpressure.
 */
class EventStream {
  private open = false;
  private keepAlive: NodeJS.Timeout | undefined;
  private stall: StallWatch | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: AnswerOptions,
  ) {}

  get started(): boolean {
    return this.open;
  }

  start(): void {
    if (this.open) return;
    this.open = true;
    this.options.onStream();
    this.res.writeHead(200, { ...SSE_HEADERS, ...this.options.headers });
    this.res.flushHeaders();
    this.keepAlive = setInterval(() => this.write(': keepalive\n\n'), this.options.keepAliveMs);
    this.keepAlive.unref();
    this.stall = new StallWatch(this.res, this.options.stallTimeoutMs, this.options.onStall);
  }

  message(json: string): void {
    this.start();
    this.write(`event: message\ndata: ${json}\n\n`);
  }

  end(): void {
    this.close();
    if (!this.res.destroyed) this.res.end();
  }

  close(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.stall?.stop();
  }

  private write(frame: string): void {
    if (!this.res.destroyed) this.res.write(frame);
  }
}

/** Serves a fast request onto `res`; resolves once the answer is written (or the client is gone). */
export async function answer(
  res: ServerResponse,
  request: FastRequest,
  context: RequestContext,
  options: AnswerOptions,
): Promise<void> {
  const stream = new EventStream(res, options);
  // A 2025-era client gets its answer as an event stream, opened at once, as the reference handler does.
  if (request.era === 'legacy') stream.start();
  try {
    const served = await request.route.run(context, async (method, params) => {
      if (!res.destroyed) stream.message(notificationFrame(method, params));
    });
    if (res.destroyed) return;
    const frame =
      served.kind === 'result' ? resultFrame(served.text, request.id) : errorFrame(served.error, request.id);
    if (stream.started) {
      stream.message(frame);
      stream.end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(frame)),
      ...options.headers,
    });
    res.end(frame);
  } catch (error) {
    options.onInternalError(error);
    context.outcome.errorType = '-32603';
    context.outcome.errorCode = 'INTERNAL';
    const frame = errorFrame({ code: -32603, message: 'Internal server error' }, request.id);
    if (res.destroyed) return;
    if (stream.started) {
      stream.message(frame);
      stream.end();
      return;
    }
    res.writeHead(500, { 'content-type': 'application/json', ...options.headers });
    res.end(frame);
  } finally {
    stream.close();
  }
}
