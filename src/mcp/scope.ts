import {
  CLIENT_INFO_META_KEY,
  type JSONRPCRequest,
  type ProtocolError,
  type RequestId,
  type ServerContext,
} from '@modelcontextprotocol/server';
import type { AuditedFiles } from '../access/files.js';
import type { AccessGate, Caller } from '../access/gate.js';
import type { Transport } from '../audit/record.js';
import type { Config } from '../config/schema.js';
import type { Principal } from '../policy/types.js';
import { clientLabel } from './envelope.js';
import { type InternalErrorReporter, toProtocolError } from './errors.js';
import type { Exchange } from './exchange.js';

/** What serving needs from the running process: swapped as a whole on reload. */
export interface McpServices {
  readonly config: Config;
  /** Decisions and audit records: what the protocol layer records outside a file operation. */
  readonly gate: AccessGate;
  /** The audited file API: the only way a tool or a resource handler reaches a file. */
  readonly files: AuditedFiles;
}

/**
 * How one server instance attributes its requests: the services it runs under, who the caller
 * is, and how failures are reported. An HTTP instance lives for one request and pins the services
 * it started with; a stdio instance lives for a connection and reads the current ones per request.
 */
export interface RequestScope {
  services(): McpServices;
  readonly principal: Principal;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  /** The HTTP exchange being served: its flow control, and where the outcome is reported. */
  readonly exchange: Exchange;
  caller(ctx: ServerContext, method: string, tool: string | null): Caller;
  /** The caller of a request seen before dispatch (a scope challenge), from its JSON-RPC form. */
  callerOf(request: JSONRPCRequest, tool: string | null): Caller;
  /** `resourceUri`: the URI a resource request named, echoed as the spec requires for not-found. */
  protocolError(error: unknown, caller: Caller, resourceUri?: string): ProtocolError;
  readonly reportInternal: InternalErrorReporter;
}

export interface ScopeOptions {
  readonly services: () => McpServices;
  readonly transport: Transport;
  readonly principal: Principal;
  readonly cancelAll: AbortSignal;
  readonly exchange: Exchange;
  /** The request id for a JSON-RPC id (HTTP: the edge's X-Request-Id; stdio: connection + JSON-RPC id). */
  readonly requestId: (jsonRpcId: RequestId) => string;
  /** The client's name when the protocol era does not carry it per request (2025-era stdio). */
  readonly clientName: () => string | null;
  /** The HTTP User-Agent (bounded, sanitised): recorded always, and the client when no name is known. */
  readonly userAgent: string | null;
  readonly reportInternal: InternalErrorReporter;
}

export function createScope(options: ScopeOptions): RequestScope {
  const attribute = (
    envelope: Record<string, unknown> | undefined,
    id: RequestId,
    method: string,
    tool: string | null,
  ): Caller => {
    const declared = envelope?.[CLIENT_INFO_META_KEY] as { name?: unknown } | undefined;
    return {
      principal: options.principal,
      requestId: options.requestId(id),
      client: clientLabel(declared?.name) ?? options.clientName() ?? options.userAgent,
      userAgent: options.userAgent,
      transport: options.transport,
      method,
      tool,
    };
  };
  return {
    services: options.services,
    principal: options.principal,
    cancelAll: options.cancelAll,
    exchange: options.exchange,
    reportInternal: options.reportInternal,
    caller(ctx, method, tool) {
      const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
      return { ...attribute(envelope, ctx.mcpReq.id, method, tool), signal: ctx.mcpReq.signal };
    },
    callerOf(request, tool) {
      const meta = (request.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
      return attribute(meta, request.id, request.method, tool);
    },
    protocolError(error, caller, resourceUri) {
      const failure = toProtocolError(error, caller.requestId, options.reportInternal, resourceUri);
      options.exchange.errorType = String(failure.code);
      return failure;
    },
  };
}
