import type { JSONRPCRequest, ProtocolError, RequestId, ServerContext } from '@modelcontextprotocol/server';
import type { Caller } from '../access/gate.js';
import type { Transport } from '../audit/record.js';
import type { Principal } from '../policy/types.js';
import { callerFor, type McpServices, type Outcome, type RequestContext, type StreamFlow } from './context.js';
import { type InternalErrorReporter, noteFailure, toProtocolError } from './errors.js';

export type { McpServices } from './context.js';

/**
 * How one SDK server instance (stdio, or the reference handler behind HTTP) attributes its
 * requests: the services it runs under, who the caller is, and how failures are reported. An
 * HTTP instance serves one request, with that request's context; a stdio instance lives for a
 * connection and reads the current services per request.
 */
export interface RequestScope {
  services(): McpServices;
  readonly principal: Principal;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly flow: StreamFlow;
  readonly outcome: Outcome;
  readonly reportInternal: InternalErrorReporter;
  caller(ctx: ServerContext, method: string, tool: string | null): Caller & { readonly signal: AbortSignal };
  /** The caller of a request seen before dispatch (a scope challenge), from its JSON-RPC form. */
  callerOf(request: JSONRPCRequest, tool: string | null): Caller;
  /** `resourceUri`: the URI a resource request named, echoed as the spec requires for not-found. */
  protocolError(error: unknown, caller: Caller, resourceUri?: string): ProtocolError;
}

export interface ScopeOptions {
  readonly services: () => McpServices;
  readonly transport: Transport;
  readonly principal: Principal;
  readonly cancelAll: AbortSignal;
  readonly flow: StreamFlow;
  readonly outcome: Outcome;
  /** The request id for a JSON-RPC id (HTTP: the request's; stdio: connection + JSON-RPC id). */
  readonly requestId: (jsonRpcId: RequestId) => string;
  /** The client's name when the protocol era does not carry it per request (2025-era stdio). */
  readonly clientName: () => string | null;
  readonly userAgent: string | null;
  readonly reportInternal: InternalErrorReporter;
}

const NEVER = new AbortController().signal;

export function createScope(options: ScopeOptions): RequestScope {
  const attribute = (
    meta: Record<string, unknown> | undefined,
    id: RequestId,
    method: string,
    tool: string | null,
    signal: AbortSignal,
  ) =>
    callerFor(
      {
        principal: options.principal,
        requestId: options.requestId(id),
        transport: options.transport,
        userAgent: options.userAgent,
        clientName: options.clientName(),
        signal,
      },
      meta,
      method,
      tool,
    );
  return {
    services: options.services,
    principal: options.principal,
    cancelAll: options.cancelAll,
    flow: options.flow,
    outcome: options.outcome,
    reportInternal: options.reportInternal,
    caller(ctx, method, tool) {
      const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
      return attribute(envelope, ctx.mcpReq.id, method, tool, ctx.mcpReq.signal);
    },
    callerOf(request, tool) {
      const meta = (request.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
      const { signal: _unused, ...caller } = attribute(meta, request.id, request.method, tool, NEVER);
      return caller;
    },
    protocolError(error, caller, resourceUri) {
      const failure = toProtocolError(error, caller.requestId, options.reportInternal, resourceUri);
      noteFailure(options.outcome, failure);
      return failure;
    },
  };
}

/** The scope of the one request an HTTP reference-handler instance serves. */
export function scopeOfRequest(context: RequestContext): RequestScope {
  return createScope({
    services: () => context.services,
    transport: context.transport,
    principal: context.principal,
    cancelAll: context.cancelAll,
    flow: context.flow,
    outcome: context.outcome,
    requestId: () => context.requestId,
    // Stateless 2025-era HTTP carries the client's name only on initialize (audited by the edge).
    clientName: () => null,
    userAgent: context.userAgent,
    reportInternal: context.reportInternal,
  });
}
