import type { RequestId } from '@modelcontextprotocol/server';
import { SERVER_INFO_META_KEY } from '@modelcontextprotocol/server';

/**
 * How a result goes on the wire, per protocol era, exactly as the SDK's reference handler writes
 * it (test/protocol/differential.test.ts holds the two side by side). 2025-era results go as the
 * handler returned them; 2026-07-28 results carry `resultType`, cache fields on cacheable
 * methods, and the server's identity in `_meta`.
 */
export type Era = 'modern' | 'legacy';

/** The 2026-07-28 revision this server serves to per-request (envelope) clients. */
export const MODERN_REVISIONS: readonly string[] = ['2026-07-28'];

/** Revisions from this one on are per-request (modern); the SDK compares them as strings too. */
export const FIRST_MODERN_REVISION = '2026-07-28';

/** The 2026-07-28 operations whose results carry `ttlMs` and `cacheScope`. */
const CACHEABLE = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'server/discover',
]);

export interface ServerInfo {
  readonly name: string;
  readonly title: string;
  readonly version: string;
}

type Result = Record<string, unknown>;

/** A handler's result as the era writes it. */
export function encodeResult(era: Era, method: string, result: Result, server: ServerInfo): Result {
  if (era === 'legacy') return result;
  let encoded: Result = result.resultType === undefined ? { ...result, resultType: 'complete' } : result;
  if (encoded.resultType === 'complete' && CACHEABLE.has(method)) {
    const ttlMs = Number.isInteger(encoded.ttlMs) && (encoded.ttlMs as number) >= 0 ? encoded.ttlMs : 0;
    const cacheScope =
      encoded.cacheScope === 'public' || encoded.cacheScope === 'private' ? encoded.cacheScope : 'private';
    encoded = { ...encoded, ttlMs, cacheScope };
  }
  const meta = encoded._meta;
  if (meta === undefined) return { ...encoded, _meta: { [SERVER_INFO_META_KEY]: server } };
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return encoded;
  if ((meta as Result)[SERVER_INFO_META_KEY] !== undefined) return encoded;
  return { ...encoded, _meta: { ...(meta as Result), [SERVER_INFO_META_KEY]: server } };
}

/**
 * A tool result as its era writes it, from its bare serialisation (which is what
 * `limits.maxResultBytes` is measured on, as the reference handler measures it). A 2026-07-28
 * result without a `_meta` of its own gets its stamps appended to that text rather than being
 * serialised again: a result can be megabytes.
 */
export function encodeToolResult(
  era: Era,
  result: Result & { _meta?: unknown; resultType?: unknown },
  bareText: string,
  server: ServerInfo,
): string {
  if (era === 'legacy') return bareText;
  if (result._meta !== undefined || result.resultType !== undefined) {
    return JSON.stringify(encodeResult(era, 'tools/call', result, server));
  }
  return `${bareText.slice(0, -1)},"resultType":"complete","_meta":${JSON.stringify({ [SERVER_INFO_META_KEY]: server })}}`;
}

/**
 * The bare serialisation of a structured tool's result whose text content is the JSON of its value
 * (the default rendering), written around that one JSON text: the value is serialised once, not
 * twice. Parses to exactly the result object.
 */
export function serialiseStructuredResult(valueJson: string): string {
  return `{"content":[{"type":"text","text":${JSON.stringify(valueJson)}}],"structuredContent":${valueJson}}`;
}

/** A JSON-RPC error as the protocol layer answers it (never an edge refusal). */
export interface ProtocolFailure {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** 2026-07-28 folds the 2025 resource-not-found code into invalid params. */
export function encodeErrorCode(era: Era, code: number): number {
  return era === 'modern' && code === -32002 ? -32602 : code;
}

/** `{"result":…,"jsonrpc":"2.0","id":…}` from an already serialised result (a cached listing is spliced, not re-encoded). */
export function resultFrame(serialisedResult: string, id: RequestId): string {
  return `{"result":${serialisedResult},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;
}

export function errorFrame(failure: ProtocolFailure, id: RequestId): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: failure });
}

export function notificationFrame(method: string, params: Result): string {
  return JSON.stringify({ jsonrpc: '2.0', method, params });
}
