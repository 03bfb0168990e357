import { CLIENT_INFO_META_KEY } from '@modelcontextprotocol/server';
import type { TraceCarrier } from '../ops/tracing.js';
import { TOOLS } from './tools/index.js';

/**
 * What the edge needs to know about an MCP message to log, measure and trace it, read from the
 * parsed body once. Label values are kept to closed sets: a method or tool name nobody defined
 * is `other`, so a client cannot blow up the metrics' cardinality.
 */
export interface MessageSummary {
  /** The JSON-RPC method, or `other`; `batch` / `response` / `invalid` for what is not one request. */
  readonly method: string;
  /** The tool of a tools/call, or `other`; null for every other method. */
  readonly tool: string | null;
  readonly id: string | number | null;
  readonly protocolVersion: string | null;
  /** W3C trace context from `params._meta` (2026-07-28 carries it there). */
  readonly trace: TraceCarrier | undefined;
  /**
   * Who the client says it is: `params.clientInfo` of a 2025-era initialize, or the clientInfo of
   * a 2026-07-28 `_meta` envelope; bounded and sanitised, as the audit keeps it.
   */
  readonly client: { readonly name: string | null; readonly version: string | null } | null;
  /** The request a `notifications/cancelled` names. */
  readonly cancels?: string | number;
}

const KNOWN_METHODS = new Set([
  'initialize',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'ping',
  'server/discover',
  'subscriptions/listen',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/update',
  'tasks/cancel',
]);

const TOOL_NAMES = new Set(TOOLS.map((tool) => tool.name));

const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';

/**
 * The JSON-RPC requests a message carries (one, or each request of a batch), labelled by method and
 * tool: what limits and refusals count. Notifications and responses carry none. `summary`: the
 * message's own summary, when it was made already.
 */
export function callsOf(parsed: unknown, summary?: MessageSummary): string[] {
  // One message already summarised: its label, without summarising it again.
  if (summary && !Array.isArray(parsed)) {
    const { id } = (parsed ?? {}) as { id?: unknown };
    if (summary.method === 'invalid' || summary.method === 'response' || id === undefined || id === null) return [];
    return [summary.tool ? `${summary.method} ${summary.tool}` : summary.method];
  }
  const messages = Array.isArray(parsed) ? parsed : [parsed];
  const calls: string[] = [];
  for (const message of messages) {
    if (message === null || typeof message !== 'object') continue;
    const { method, id } = message as { method?: unknown; id?: unknown };
    if (typeof method !== 'string' || id === undefined || id === null) continue;
    const summary = summarizeMessage(message);
    calls.push(summary.tool ? `${summary.method} ${summary.tool}` : summary.method);
  }
  return calls;
}

export function summarizeMessage(parsed: unknown): MessageSummary {
  const none = { tool: null, id: null, protocolVersion: null, trace: undefined, client: null };
  if (Array.isArray(parsed)) return { method: 'batch', ...none };
  if (parsed === null || typeof parsed !== 'object') return { method: 'invalid', ...none };
  const message = parsed as {
    method?: unknown;
    id?: unknown;
    params?: {
      name?: unknown;
      _meta?: Record<string, unknown>;
      clientInfo?: unknown;
      protocolVersion?: unknown;
      requestId?: unknown;
    };
  };
  if (typeof message.method !== 'string') return { method: 'response', ...none };
  const method = KNOWN_METHODS.has(message.method) ? message.method : 'other';
  const name = message.params?.name;
  const tool = method === 'tools/call' ? (typeof name === 'string' && TOOL_NAMES.has(name) ? name : 'other') : null;
  const meta = message.params?._meta;
  const traceparent = typeof meta?.traceparent === 'string' ? meta.traceparent : undefined;
  const tracestate = typeof meta?.tracestate === 'string' ? meta.tracestate : undefined;
  const version = message.method === 'initialize' ? message.params?.protocolVersion : meta?.[PROTOCOL_VERSION_KEY];
  const declared = (message.method === 'initialize' ? message.params?.clientInfo : meta?.[CLIENT_INFO_META_KEY]) as
    | { name?: unknown; version?: unknown }
    | undefined;
  const cancels = method === 'notifications/cancelled' ? message.params?.requestId : undefined;
  return {
    method,
    tool,
    ...(typeof cancels === 'string' || typeof cancels === 'number' ? { cancels } : {}),
    id: typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null,
    protocolVersion: typeof version === 'string' ? version : null,
    trace: traceparent ? { traceparent, ...(tracestate ? { tracestate } : {}) } : undefined,
    client:
      declared && typeof declared === 'object'
        ? { name: clientLabel(declared.name), version: clientLabel(declared.version) }
        : null,
  };
}

/** Longest client-supplied label (a client name, a User-Agent) an audit record keeps. */
export const MAX_LABEL_CHARS = 200;

/**
 * A client-supplied label as a record may hold it: printable ASCII only (anything else becomes
 * "?", so a label can neither break a log line nor hide as look-alike text), at most
 * MAX_LABEL_CHARS; null when empty or absent.
 */
export function clientLabel(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const printable = value.replace(/[^\x20-\x7e]/g, '?').trim();
  if (printable.length === 0) return null;
  return printable.length > MAX_LABEL_CHARS ? `${printable.slice(0, MAX_LABEL_CHARS)}...` : printable;
}
