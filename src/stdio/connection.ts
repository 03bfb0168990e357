import { randomBytes } from 'node:crypto';
import { type Readable, Transform, type Writable } from 'node:stream';
import {
  isJSONRPCErrorResponse,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type McpServer,
  type MessageExtraInfo,
  type RequestId,
  type ServerEvent,
  type Transport,
  type TransportSendOptions,
} from '@modelcontextprotocol/server';
import { StdioServerTransport, serveStdio } from '@modelcontextprotocol/server/stdio';
import type { ChangeFeed } from '../access/changes.js';
import { jsonRpcError, McpdError } from '../errors.js';
import { toolCatalog } from '../mcp/catalog.js';
import { canonicalRequest } from '../mcp/classify.js';
import { ALWAYS_WRITABLE, type McpServices } from '../mcp/context.js';
import { clientLabel, type MessageSummary, summarizeMessage } from '../mcp/envelope.js';
import { logInternalErrors } from '../mcp/errors.js';
import { createScope } from '../mcp/scope.js';
import { buildServer, serverInfo } from '../mcp/server.js';
import { InFlight } from '../ops/inflight.js';
import type { Logger } from '../ops/logger.js';
import { LOCAL } from '../policy/types.js';
import { StdioFastPath } from './fastPath.js';

function errorResponse(error: McpdError, id: RequestId | null = null): JSONRPCMessage {
  return jsonRpcError(error, id) as unknown as JSONRPCMessage;
}

/**
 * Passes stdin through unchanged, and answers every line that is not JSON with a JSON-RPC parse
 * error (the SDK's reader skips such lines silently, which leaves a client waiting forever).
 */
export function parseErrorGuard(reply: (message: JSONRPCMessage) => void): Transform {
  let pending = '';
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString('utf8');
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line.length > 0) {
          try {
            JSON.parse(line);
          } catch {
            reply(errorResponse(new McpdError('PARSE_ERROR', 'Parse error')));
          }
        }
        newline = pending.indexOf('\n');
      }
      callback(null, chunk);
    },
  });
}

/**
 * Relays the stdio transport for the SDK's serveStdio while keeping what the connection needs to
 * stop gracefully: which requests are in flight, and a draining mode in which new requests are
 * answered "shutting down" instead of being served.
 */
class ObservedTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;
  readonly closed: Promise<void>;
  private readonly inFlight = new InFlight<RequestId>();
  private draining = false;

  constructor(
    private readonly inner: Transport,
    observe: (message: JSONRPCMessage) => void,
    private readonly answered: (message: JSONRPCMessage) => void = () => {},
    /** Takes a message it answers itself, calling `done` once answered; false passes it to the SDK. */
    private readonly take: (message: JSONRPCMessage, done: () => void) => boolean = () => false,
  ) {
    let markClosed!: () => void;
    this.closed = new Promise((resolve) => {
      markClosed = resolve;
    });
    inner.onmessage = (message, extra) => {
      if (isJSONRPCRequest(message)) {
        if (this.draining) {
          void inner.send(errorResponse(new McpdError('UNAVAILABLE', 'the server is shutting down'), message.id));
          return;
        }
        // A listen stream lives as long as the connection: it is closed, not waited for.
        if (message.method !== 'subscriptions/listen') this.inFlight.add(message.id);
      }
      observe(message);
      const id = isJSONRPCRequest(message) ? message.id : undefined;
      if (this.take(message, () => id !== undefined && this.inFlight.delete(id))) return;
      this.onmessage?.(message, extra);
    };
    inner.onerror = (error) => {
      // JSON that is not JSON-RPC gets the error it deserves (non-JSON is answered by parseErrorGuard).
      if (error.name === 'ZodError')
        void inner.send(errorResponse(new McpdError('INVALID_REQUEST', 'Invalid Request')));
      this.onerror?.(error);
    };
    inner.onclose = () => {
      markClosed();
      this.onclose?.();
    };
  }

  /** Refuses new requests from now on; resolves when those in flight are answered or after graceMs. */
  async drain(graceMs: number): Promise<{ unfinished: number }> {
    this.draining = true;
    const { remaining } = await this.inFlight.whenEmpty(graceMs);
    return { unfinished: remaining };
  }

  start(): Promise<void> {
    return this.inner.start();
  }
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id !== undefined) {
      this.inFlight.delete(message.id);
      this.answered(message);
    }
    return this.inner.send(message, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface StdioOptions {
  /** The current services; a long-lived connection sees reloads from its next request on. */
  readonly services: () => McpServices;
  /** Aborted when in-flight work is to be given up (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly changes: ChangeFeed;
  readonly version: string;
  readonly logger: Logger;
  readonly input: Readable;
  readonly output: Writable;
}

export interface StdioConnection {
  /** Requests answered by the fast path (the rest by the SDK's server). */
  readonly fastAnswered: () => number;
  /** Resolves when the client closes stdin (or the connection is closed). */
  readonly closed: Promise<void>;
  /** Stops taking requests; resolves when those in flight are answered, or after graceMs. */
  drain(graceMs: number): Promise<{ unfinished: number }>;
  close(): Promise<void>;
}

/**
 * One MCP connection over stdio. The era is pinned by the opening exchange (the SDK's serveStdio);
 * change notifications flow only once the client asks for them, and the file watcher starts then.
 */
export function serveStdioConnection(options: StdioOptions): StdioConnection {
  const { logger } = options;
  const connectionId = randomBytes(4).toString('hex');
  const reportInternal = logInternalErrors(logger);

  // The pinned instance and how change events reach it; set when the factory builds it.
  let deliver: ((event: ServerEvent) => void) | undefined;
  let stopFeed: (() => void) | undefined;
  const startFeed = () => {
    stopFeed ??= options.changes.subscribe((event) => deliver?.(event));
  };
  const legacySubscribed = new Set<string>();

  const stdio: StdioServerTransport = new StdioServerTransport(
    options.input.pipe(parseErrorGuard((message) => void stdio.send(message).catch(() => {}))),
    options.output,
  );
  // A 2025-era handshake is audited once answered: it is where the client names itself.
  const handshakes = new Map<RequestId, MessageSummary>();
  const info = serverInfo(options.version);
  const fast = new StdioFastPath({
    services: options.services,
    cancelAll: options.cancelAll,
    connectionId,
    catalog: toolCatalog(info),
    server: info,
    output: options.output,
    reportInternal,
  });
  // 2026-07-28 requests the SDK is serving: the first one it answers settles the connection's era.
  const modernOpening = new Set<RequestId>();
  const transport = new ObservedTransport(
    stdio,
    (message) => {
      if (!('method' in message)) return;
      if (message.method === 'subscriptions/listen' || message.method === 'resources/subscribe') startFeed();
      if (message.method === 'initialize' && 'id' in message) handshakes.set(message.id, summarizeMessage(message));
      else if (
        // Only until the era is settled: the fast path answers later requests itself, and an id
        // kept for an answer the SDK never sends would stay here for the life of the connection.
        !fast.pinned &&
        'id' in message &&
        message.method !== 'server/discover' &&
        canonicalRequest(message)?.era === 'modern'
      ) {
        modernOpening.add(message.id);
      }
    },
    (response) => {
      const id = 'id' in response ? response.id : undefined;
      if (id !== undefined && modernOpening.delete(id) && isJSONRPCResultResponse(response)) fast.pin('modern');
      const handshake = id === undefined ? undefined : handshakes.get(id);
      if (id === undefined || !handshake) return;
      handshakes.delete(id);
      if (isJSONRPCResultResponse(response)) fast.pin('legacy', handshake.client?.name ?? null);
      options.services().gate.recordInitialize(
        {
          principal: LOCAL,
          requestId: `${connectionId}:${String(id)}`,
          client: handshake.client?.name ?? null,
          userAgent: null,
          transport: 'stdio',
          method: 'initialize',
          tool: null,
        },
        {
          protocolVersion: handshake.protocolVersion,
          clientVersion: handshake.client?.version ?? null,
          ok: isJSONRPCResultResponse(response),
        },
      );
    },
    (message, done) => fast.take(message, done),
  );

  const handle = serveStdio(
    ({ era }) => {
      let server: McpServer | undefined;
      const scope = createScope({
        services: options.services,
        transport: 'stdio',
        // stdio is the local user's own process: the roots' policies apply, grants are for HTTP callers.
        principal: LOCAL,
        cancelAll: options.cancelAll,
        // One client on a pipe: its reads are paced by the pipe, and no edge reads an outcome.
        flow: ALWAYS_WRITABLE,
        outcome: {},
        requestId: (id) => `${connectionId}:${String(id)}`,
        clientName: () => clientLabel(server?.server.getClientVersion()?.name),
        userAgent: null,
        reportInternal,
      });
      server = buildServer(scope, {
        version: options.version,
        subscriptions: era === 'modern' ? 'listen' : 'legacy',
        legacySubscriptions: legacySubscribed,
      });
      const instance = server;
      // Modern: the SDK's listen router filters what the instance sends; legacy: we filter by subscription.
      deliver = (event) => {
        if (event.kind === 'resources_list_changed') void instance.server.sendResourceListChanged().catch(() => {});
        if (event.kind === 'resource_updated' && (era === 'modern' || legacySubscribed.has(event.uri))) {
          void instance.server.sendResourceUpdated({ uri: event.uri }).catch(() => {});
        }
      };
      return server;
    },
    { transport, onerror: (error) => logger.debug({ err: error }, 'stdio connection diagnostic') },
  );

  return {
    closed: transport.closed.then(() => {
      stopFeed?.();
    }),
    drain: (graceMs) => transport.drain(graceMs),
    fastAnswered: () => fast.answered,
    close: async () => {
      stopFeed?.();
      await handle.close();
    },
  };
}
