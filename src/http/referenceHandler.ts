import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';
import { type AuthInfo, CLIENT_INFO_META_KEY, createMcpHandler } from '@modelcontextprotocol/server';
import type { ChangeFeed } from '../access/changes.js';
import type { RequestContext } from '../mcp/context.js';
import { clientLabel } from '../mcp/envelope.js';
import { changeBus, type ListenerScope, listenerScope } from '../mcp/events.js';
import { scopeOfRequest } from '../mcp/scope.js';
import { buildServer } from '../mcp/server.js';
import type { Logger } from '../ops/logger.js';

/** Who the edge let in, as the SDK's pass-through AuthInfo carries it (scope challenges read it). */
export interface RequestAuth {
  /** False when authentication is off (auth.mode none): the local, anonymous caller. */
  readonly authenticated: boolean;
  readonly expiresAt?: number;
  /** Where the OAuth protected-resource metadata is, for scope challenges (jwt mode). */
  readonly resourceMetadataUrl?: string;
  readonly publicUrl: string;
}

/**
 * The SDK's own HTTP entry (createMcpHandler), kept as the reference implementation: it answers
 * everything the fast path declines (the 2025 handshake, notifications, batches, listen streams,
 * discovery, every refusal of the protocol's validation ladder) with a fresh server instance per
 * request, as the SDK intends. The request's context reaches that instance through async-local
 * storage, never through headers stamped for it to find.
 */
export interface ReferenceHandler {
  fetch(request: Request, context: RequestContext, auth: RequestAuth, parsedBody: unknown): Promise<Response>;
  /** Ends open subscription streams gracefully and aborts what is still in flight. */
  close(): Promise<void>;
}

export interface ReferenceOptions {
  readonly changes: ChangeFeed;
  readonly version: string;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly keepAliveMs: number;
  readonly maxSubscriptions: number;
}

function authInfoOf(context: RequestContext, auth: RequestAuth): AuthInfo | undefined {
  if (!auth.authenticated) return undefined;
  const { principal } = context;
  return {
    // The token itself stays at the edge: nothing past it ever needs it.
    token: '',
    clientId: principal.id,
    scopes: [...principal.scopes],
    ...(auth.expiresAt === undefined ? {} : { expiresAt: auth.expiresAt }),
    // Only an OAuth resource server names itself; API keys have no metadata to point a client at.
    ...(auth.resourceMetadataUrl === undefined
      ? {}
      : { resource: new URL(auth.publicUrl), resourceMetadataUrl: auth.resourceMetadataUrl }),
  };
}

interface Pending {
  readonly context: RequestContext;
  readonly listener: ListenerScope;
}

export function createReferenceHandler(options: ReferenceOptions): ReferenceHandler {
  // The request being served: its context for the instance, its scope for a listen stream's bus.
  const serving = new AsyncLocalStorage<Pending>();
  const handler = createMcpHandler(
    ({ era }) => {
      const pending = serving.getStore();
      if (!pending) throw new Error('the reference handler was reached outside a request');
      return buildServer(scopeOfRequest(pending.context), {
        version: options.version,
        subscriptions: era === 'modern' ? 'listen' : 'none',
      });
    },
    {
      legacy: 'stateless',
      bus: changeBus(options.changes, () => serving.getStore()?.listener),
      keepAliveMs: options.keepAliveMs,
      maxRequestBodySize: options.maxBodyBytes,
      maxSubscriptions: options.maxSubscriptions,
      onerror: (error) => options.logger.debug({ err: error }, 'request rejected by the MCP handler'),
    },
  );
  return {
    fetch(request, context, auth, parsedBody) {
      const authInfo = authInfoOf(context, auth);
      const client = clientNameOf(parsedBody);
      return serving.run({ context, listener: listenerScope(context, client) }, () =>
        handler.fetch(request, {
          ...(authInfo ? { authInfo } : {}),
          ...(parsedBody === undefined ? {} : { parsedBody }),
        }),
      );
    },
    close: () => handler.close(),
  };
}

/** The client name a 2026-07-28 envelope declares (a listen request names its client there). */
function clientNameOf(parsedBody: unknown): string | null {
  const meta = (parsedBody as { params?: { _meta?: Record<string, unknown> } } | null)?.params?._meta;
  return clientLabel((meta?.[CLIENT_INFO_META_KEY] as { name?: unknown } | undefined)?.name);
}

/**
 * The headers the SDK's handler reads. Only these are copied: a request padded with a thousand
 * headers would otherwise cost milliseconds of copying, and nothing else of them is the SDK's
 * business (credentials stay at the edge).
 */
const FORWARDED_HEADERS = [
  'accept',
  'content-type',
  'content-length',
  'host',
  'origin',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'mcp-protocol-version',
  'mcp-session-id',
  'user-agent',
];

/** The node request as a web Request for the SDK, with the body already read. */
export function webRequest(req: IncomingMessage, body: Buffer, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const name of FORWARDED_HEADERS) {
    const value = req.headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  return new Request(new URL(req.url ?? '/', 'http://mcpd.invalid'), {
    method: req.method ?? 'POST',
    headers,
    ...(req.method === 'POST' || req.method === 'PUT' ? { body } : {}),
    signal,
  });
}

const WARM_UP_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'mcpd warm-up', version: '0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/**
 * Runs a tools/list of each era through the reference handler before the server takes traffic.
 * The first request through it otherwise pays for loading the web Request and Response classes
 * and building the SDK's schemas: some 150 ms on the event loop, landing on whoever comes first.
 */
export async function warmUp(handler: ReferenceHandler, context: RequestContext): Promise<void> {
  const auth: RequestAuth = { authenticated: false, publicUrl: 'http://127.0.0.1/mcp' };
  const requests: { headers: Record<string, string>; body: unknown }[] = [
    {
      headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' },
      body: { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: WARM_UP_META } },
    },
    { headers: { 'mcp-protocol-version': '2025-11-25' }, body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } },
  ];
  for (const { headers, body } of requests) {
    const request = new Request('http://127.0.0.1/mcp', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify(body),
    });
    const response = await handler.fetch(request, context, auth, body);
    await response.text();
  }
}
