import { CLIENT_INFO_META_KEY } from '@modelcontextprotocol/server';
import type { AuditedDatabases } from '../access/databases.js';
import type { AuditedFiles } from '../access/files.js';
import type { AccessGate, Caller } from '../access/gate.js';
import type { Transport } from '../audit/record.js';
import type { Config } from '../config/schema.js';
import type { Principal } from '../policy/types.js';
import { clientLabel } from './envelope.js';
import type { InternalErrorReporter } from './errors.js';

/** What serving needs from the running process: swapped as a whole on reload. */
export interface McpServices {
  readonly config: Config;
  /** Decisions and audit records: what the protocol layer records outside a file operation. */
  readonly gate: AccessGate;
  /** The audited file API: the only way a tool or a resource handler reaches a file. */
  readonly files: AuditedFiles;
  /** The audited database API: the only way a tool reaches a database. */
  readonly databases: AuditedDatabases;
}

/**
 * The SDK queues every notification without regard for how fast the client reads, so a tool asks
 * before each one whether the connection can take more, and waits when it cannot: a slow reader
 * slows the producer instead of growing a buffer.
 */
export interface StreamFlow {
  /** Resolves once the connection has room for more (immediately when it has). */
  whenWritable(): Promise<void>;
}

export const ALWAYS_WRITABLE: StreamFlow = { whenWritable: () => Promise.resolve() };

/** How a request ended, for the edge's metrics, log line and span; set by whoever served it. */
export interface Outcome {
  /** The JSON-RPC error code of a protocol error, or `tool_error` for an isError result. */
  errorType?: string;
  /**
   * The catalogue code it failed with (INTERNAL, UNAVAILABLE, NOT_FOUND_OR_DENIED, ...): what tells
   * a fault of the server from a refusal of the client, for the availability objective.
   */
  errorCode?: string;
}

/**
 * One request as the protocol layer serves it, made once by the transport that received it: who
 * asks, under which services (the one read of the runtime: a reload never lands mid-request), how
 * it is stopped, how fast its answer may flow, and where its outcome goes. Nothing in it is shared
 * with another request.
 */
export interface RequestContext {
  readonly services: McpServices;
  readonly principal: Principal;
  /** The id its audit records and log line are filed under. */
  readonly requestId: string;
  readonly transport: Transport;
  /** The HTTP User-Agent (bounded, sanitised): recorded always, and the client when no name is known. */
  readonly userAgent: string | null;
  /** The client's name when the connection knows it (a 2025 stdio handshake); an envelope's name wins. */
  readonly clientName?: string | null;
  /** Aborted when the client cancels or goes away. */
  readonly signal: AbortSignal;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly flow: StreamFlow;
  readonly outcome: Outcome;
  readonly reportInternal: InternalErrorReporter;
}

/**
 * Who a request's audit records name: the principal, and the client by the name its envelope
 * declares, else `fallbackClient` (a stdio client's handshake name), else its User-Agent.
 */
export function callerFor(
  context: Pick<RequestContext, 'principal' | 'requestId' | 'transport' | 'userAgent' | 'signal' | 'clientName'>,
  meta: Record<string, unknown> | undefined,
  method: string,
  tool: string | null,
): Caller & { readonly signal: AbortSignal } {
  const declared = meta?.[CLIENT_INFO_META_KEY] as { name?: unknown } | undefined;
  return {
    principal: context.principal,
    requestId: context.requestId,
    client: clientLabel(declared?.name) ?? context.clientName ?? context.userAgent,
    userAgent: context.userAgent,
    transport: context.transport,
    method,
    tool,
    signal: context.signal,
  };
}
