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
]);

const TOOL_NAMES = new Set(TOOLS.map((tool) => tool.name));

const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';

export function summarizeMessage(parsed: unknown): MessageSummary {
  const none = { tool: null, id: null, protocolVersion: null, trace: undefined };
  if (Array.isArray(parsed)) return { method: 'batch', ...none };
  if (parsed === null || typeof parsed !== 'object') return { method: 'invalid', ...none };
  const message = parsed as {
    method?: unknown;
    id?: unknown;
    params?: { name?: unknown; _meta?: Record<string, unknown> };
  };
  if (typeof message.method !== 'string') return { method: 'response', ...none };
  const method = KNOWN_METHODS.has(message.method) ? message.method : 'other';
  const name = message.params?.name;
  const tool = method === 'tools/call' ? (typeof name === 'string' && TOOL_NAMES.has(name) ? name : 'other') : null;
  const meta = message.params?._meta;
  const traceparent = typeof meta?.traceparent === 'string' ? meta.traceparent : undefined;
  const tracestate = typeof meta?.tracestate === 'string' ? meta.tracestate : undefined;
  const version = meta?.[PROTOCOL_VERSION_KEY];
  return {
    method,
    tool,
    id: typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null,
    protocolVersion: typeof version === 'string' ? version : null,
    trace: traceparent ? { traceparent, ...(tracestate ? { tracestate } : {}) } : undefined,
  };
}
