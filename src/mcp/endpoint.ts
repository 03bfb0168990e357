import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { type AuthInfo, createMcpHandler } from '@modelcontextprotocol/server';
import type { ChangeFeed } from '../access/changes.js';
import type { Logger } from '../ops/logger.js';
import { ANONYMOUS, type Principal } from '../policy/types.js';
import { clientLabel, summarizeMessage } from './envelope.js';
import { logInternalErrors } from './errors.js';
import { changeBus, type ListenerScope } from './events.js';
import { EXCHANGE_HEADER, type ExchangeRegistry } from './exchange.js';
import { createScope, type McpServices } from './scope.js';
import { buildServer } from './server.js';

/** The header the HTTP edge stamps on every request it hands over. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Who the edge let in, for one exchange. */
export interface ExchangeContext {
  /** Null when authentication is off (auth.mode none): the local, anonymous caller. */
  readonly principal: Principal | null;
  readonly expiresAt?: number;
  /** Where the OAuth protected-resource metadata is, for scope challenges (jwt mode). */
  readonly resourceMetadataUrl?: string;
}

/**
 * The seam between the HTTP edge and MCP: the edge hands over a web Request and who sent it, and
 * gets a Response. Everything about how a request reaches a tool (today the SDK's per-request
 * handler, a fresh server per request) stays behind this interface.
 */
export interface McpEndpoint {
  /** `parsedBody`: the body the edge already parsed (it is not parsed twice); absent when it is not JSON. */
  fetch(request: Request, exchange: ExchangeContext, parsedBody?: unknown): Promise<Response>;
  /** Ends open subscription streams gracefully and aborts what is still in flight. */
  close(): Promise<void>;
}

export interface EndpointOptions {
  /** The services a new request runs under; a request keeps the ones it started with. */
  readonly services: () => McpServices;
  readonly changes: ChangeFeed;
  readonly exchanges: ExchangeRegistry;
  /** Aborted when in-flight work is to be given up (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly version: string;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly keepAliveMs: number;
  readonly maxSubscriptions: number;
}

/** The principal travels to the server instance inside the SDK's pass-through AuthInfo. */
const PRINCIPAL_KEY = 'dev.mcpd/principal';

function authInfoOf(exchange: ExchangeContext, publicUrl: string): AuthInfo | undefined {
  const { principal } = exchange;
  if (principal === null) return undefined;
  return {
    // The token itself stays at the edge: nothing past it ever needs it.
    token: '',
    clientId: principal.id,
    scopes: [...principal.scopes],
    ...(exchange.expiresAt === undefined ? {} : { expiresAt: exchange.expiresAt }),
    // Only an OAuth resource server names itself; API keys have no metadata to point a client at.
    ...(exchange.resourceMetadataUrl === undefined
      ? {}
      : { resource: new URL(publicUrl), resourceMetadataUrl: exchange.resourceMetadataUrl }),
    extra: { [PRINCIPAL_KEY]: principal },
  };
}

/**
 * Who a listen stream belongs to: it hears of a root only when the principal's grants let it read
 * there, and its opening is audited.
 */
function listenerScope(
  services: McpServices,
  exchange: ExchangeContext,
  request: Request,
  parsedBody: unknown,
): ListenerScope {
  const principal = exchange.principal ?? ANONYMOUS;
  const readable = new Set(services.files.visibleRoots(principal).map((root) => root.name));
  const userAgent = clientLabel(request.headers.get('user-agent'));
  const summary = summarizeMessage(parsedBody);
  return {
    permits: (root) => readable.has(root),
    subscribed: () =>
      services.gate.recordSubscription(
        {
          principal,
          requestId: request.headers.get(REQUEST_ID_HEADER) ?? randomUUID(),
          client: summary.client?.name ?? userAgent,
          userAgent,
          transport: 'http',
          method: 'subscriptions/listen',
          tool: null,
        },
        [...readable],
      ),
  };
}

export function createHttpEndpoint(options: EndpointOptions): McpEndpoint {
  const { logger } = options;
  const reportInternal = logInternalErrors(logger);
  // The request being served, for the event bus: a listen stream subscribes while its request runs.
  const listening = new AsyncLocalStorage<ListenerScope>();

  const handler = createMcpHandler(
    ({ era, requestInfo, authInfo }) => {
      const snapshot = options.services();
      const requestId = requestInfo?.headers.get(REQUEST_ID_HEADER) ?? randomUUID();
      const principal = (authInfo?.extra?.[PRINCIPAL_KEY] as Principal | undefined) ?? ANONYMOUS;
      const scope = createScope({
        services: () => snapshot,
        transport: 'http',
        principal,
        cancelAll: options.cancelAll,
        exchange: options.exchanges.get(requestInfo?.headers.get(EXCHANGE_HEADER)),
        requestId: () => requestId,
        // Stateless 2025-era HTTP carries the client's name only on initialize (audited by the edge).
        clientName: () => null,
        userAgent: clientLabel(requestInfo?.headers.get('user-agent')),
        reportInternal,
      });
      return buildServer(scope, {
        version: options.version,
        subscriptions: era === 'modern' ? 'listen' : 'none',
      });
    },
    {
      legacy: 'stateless',
      bus: changeBus(options.changes, () => listening.getStore()),
      keepAliveMs: options.keepAliveMs,
      maxRequestBodySize: options.maxBodyBytes,
      maxSubscriptions: options.maxSubscriptions,
      onerror: (error) => logger.debug({ err: error }, 'request rejected by the MCP handler'),
    },
  );
  return {
    fetch: (request, exchange, parsedBody) => {
      const services = options.services();
      const authInfo = authInfoOf(exchange, services.config.server.publicUrl);
      const scope = listenerScope(services, exchange, request, parsedBody);
      return listening.run(scope, () =>
        handler.fetch(request, {
          ...(authInfo ? { authInfo } : {}),
          ...(parsedBody === undefined ? {} : { parsedBody }),
        }),
      );
    },
    close: () => handler.close(),
  };
}
