import { CLIENT_INFO_META_KEY, type ProtocolError, type ServerContext } from '@modelcontextprotocol/server';
import type { AccessGate, Caller } from '../access/gate.js';
import type { Transport } from '../audit/record.js';
import type { Config } from '../config/schema.js';
import { ANONYMOUS } from '../policy/types.js';
import { type InternalErrorReporter, toProtocolError } from './errors.js';

/** What serving needs from the running process: swapped as a whole on reload. */
export interface McpServices {
  readonly config: Config;
  readonly gate: AccessGate;
}

/**
 * How one server instance attributes its requests: the services it runs under, who the caller
 * is, and how failures are reported. An HTTP instance lives for one request and pins the services
 * it started with; a stdio instance lives for a connection and reads the current ones per request.
 */
export interface RequestScope {
  services(): McpServices;
  caller(ctx: ServerContext, method: string, tool: string | null): Caller;
  /** `resourceUri`: the URI a resource request named, echoed as the spec requires for not-found. */
  protocolError(error: unknown, caller: Caller, resourceUri?: string): ProtocolError;
  readonly reportInternal: InternalErrorReporter;
}

export interface ScopeOptions {
  readonly services: () => McpServices;
  readonly transport: Transport;
  /** The request id for a request (HTTP: the edge's X-Request-Id; stdio: connection + JSON-RPC id). */
  readonly requestId: (ctx: ServerContext) => string;
  /** The client's name when the protocol era does not carry it per request (2025-era stdio). */
  readonly clientName: () => string | null;
  readonly reportInternal: InternalErrorReporter;
}

export function createScope(options: ScopeOptions): RequestScope {
  return {
    services: options.services,
    reportInternal: options.reportInternal,
    caller(ctx, method, tool) {
      const envelope = ctx.mcpReq.envelope as Record<string, { name?: unknown } | undefined> | undefined;
      const envelopeClient = envelope?.[CLIENT_INFO_META_KEY];
      const client = typeof envelopeClient?.name === 'string' ? envelopeClient.name : options.clientName();
      return {
        principal: ANONYMOUS,
        requestId: options.requestId(ctx),
        client,
        transport: options.transport,
        method,
        tool,
        signal: ctx.mcpReq.signal,
      };
    },
    protocolError(error, caller, resourceUri) {
      return toProtocolError(error, caller.requestId, options.reportInternal, resourceUri);
    },
  };
}
