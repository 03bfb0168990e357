import { randomBytes } from 'node:crypto';
import { type Readable, Transform, type Writable } from 'node:stream';
import {
  INVALID_REQUEST,
  type JSONRPCMessage,
  type McpServer,
  type MessageExtraInfo,
  PARSE_ERROR,
  type Transport,
  type TransportSendOptions,
} from '@modelcontextprotocol/server';
import { StdioServerTransport, serveStdio } from '@modelcontextprotocol/server/stdio';
import type { Logger } from '../ops/logger.js';
import type { ChangeFeed } from './changes.js';
import type { InternalErrorReporter } from './errors.js';
import { createScope, type McpServices } from './scope.js';
import { buildServer } from './server.js';

function errorResponse(code: number, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id: null, error: { code, message } } as unknown as JSONRPCMessage;
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
            reply(errorResponse(PARSE_ERROR, 'Parse error'));
          }
        }
        newline = pending.indexOf('\n');
      }
      callback(null, chunk);
    },
  });
}

/** Relays a transport and lets us see inbound messages and the close, without owning either. */
class ObservedTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;
  readonly closed: Promise<void>;

  constructor(
    private readonly inner: Transport,
    observe: (message: JSONRPCMessage) => void,
  ) {
    let markClosed!: () => void;
    this.closed = new Promise((resolve) => {
      markClosed = resolve;
    });
    inner.onmessage = (message, extra) => {
      observe(message);
      this.onmessage?.(message, extra);
    };
    inner.onerror = (error) => {
      // A line that is not JSON, or not JSON-RPC, gets the JSON-RPC error it deserves; the connection stays up.
      const invalid =
        error instanceof SyntaxError ? PARSE_ERROR : error.name === 'ZodError' ? INVALID_REQUEST : undefined;
      if (invalid !== undefined) {
        const message = invalid === PARSE_ERROR ? 'Parse error' : 'Invalid Request';
        void inner.send({ jsonrpc: '2.0', id: null, error: { code: invalid, message } } as unknown as JSONRPCMessage);
      }
      this.onerror?.(error);
    };
    inner.onclose = () => {
      markClosed();
      this.onclose?.();
    };
  }

  start(): Promise<void> {
    return this.inner.start();
  }
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return this.inner.send(message, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface StdioOptions {
  /** The current services; a long-lived connection sees reloads from its next request on. */
  readonly services: () => McpServices;
  readonly changes: ChangeFeed;
  readonly version: string;
  readonly logger: Logger;
  readonly input: Readable;
  readonly output: Writable;
}

export interface StdioConnection {
  /** Resolves when the client closes stdin (or the connection is closed). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * One MCP connection over stdio. The era is pinned by the opening exchange (the SDK's serveStdio);
 * change notifications flow only once the client asks for them, and the file watcher starts then.
 */
export function serveStdioConnection(options: StdioOptions): StdioConnection {
  const { logger } = options;
  const connectionId = randomBytes(4).toString('hex');
  const reportInternal: InternalErrorReporter = (error, requestId) =>
    logger.error({ err: error, requestId }, 'internal error while serving a request');

  // The pinned instance and how change events reach it; set when the factory builds it.
  let deliver: ((event: Parameters<Parameters<ChangeFeed['subscribe']>[0]>[0]) => void) | undefined;
  let stopFeed: (() => void) | undefined;
  const startFeed = () => {
    stopFeed ??= options.changes.subscribe((event) => deliver?.(event));
  };
  const legacySubscribed = new Set<string>();

  const stdio: StdioServerTransport = new StdioServerTransport(
    options.input.pipe(parseErrorGuard((message) => void stdio.send(message).catch(() => {}))),
    options.output,
  );
  const transport = new ObservedTransport(stdio, (message) => {
    if (
      'method' in message &&
      (message.method === 'subscriptions/listen' || message.method === 'resources/subscribe')
    ) {
      startFeed();
    }
  });

  const handle = serveStdio(
    ({ era }) => {
      let server: McpServer | undefined;
      const scope = createScope({
        services: options.services,
        transport: 'stdio',
        requestId: (ctx) => `${connectionId}:${String(ctx.mcpReq.id)}`,
        clientName: () => server?.server.getClientVersion()?.name ?? null,
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
    close: async () => {
      stopFeed?.();
      await handle.close();
    },
  };
}
