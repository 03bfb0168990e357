import { randomUUID } from 'node:crypto';
import { createMcpHandler } from '@modelcontextprotocol/server';
import type { Logger } from '../ops/logger.js';
import type { ChangeFeed } from './changes.js';
import type { InternalErrorReporter } from './errors.js';
import { createScope, type McpServices } from './scope.js';
import { buildServer } from './server.js';

/** The header the HTTP edge stamps on every request it hands over. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * The seam between the HTTP edge and MCP: the edge hands over a web Request and gets a Response.
 * Everything about how a request reaches a tool (today the SDK's per-request handler, a fresh
 * server per request) stays behind this interface.
 */
export interface McpEndpoint {
  fetch(request: Request): Promise<Response>;
  /** Ends open subscription streams gracefully and aborts what is still in flight. */
  close(): Promise<void>;
}

export interface EndpointOptions {
  /** The services a new request runs under; a request keeps the ones it started with. */
  readonly services: () => McpServices;
  readonly changes: ChangeFeed;
  readonly version: string;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly keepAliveMs: number;
}

export function createHttpEndpoint(options: EndpointOptions): McpEndpoint {
  const { logger } = options;
  const reportInternal: InternalErrorReporter = (error, requestId) =>
    logger.error({ err: error, requestId }, 'internal error while serving a request');

  const handler = createMcpHandler(
    ({ era, requestInfo }) => {
      const snapshot = options.services();
      const requestId = requestInfo?.headers.get(REQUEST_ID_HEADER) ?? randomUUID();
      const scope = createScope({
        services: () => snapshot,
        transport: 'http',
        requestId: () => requestId,
        // Stateless 2025-era HTTP carries the client's name only on initialize.
        clientName: () => null,
        reportInternal,
      });
      return buildServer(scope, {
        version: options.version,
        subscriptions: era === 'modern' ? 'listen' : 'none',
      });
    },
    {
      legacy: 'stateless',
      bus: options.changes.asBus(),
      keepAliveMs: options.keepAliveMs,
      maxRequestBodySize: options.maxBodyBytes,
      onerror: (error) => logger.debug({ err: error }, 'request rejected by the MCP handler'),
    },
  );
  return {
    fetch: (request) => handler.fetch(request),
    close: () => handler.close(),
  };
}
