import { classifyInboundRequest, PROTOCOL_VERSION_META_KEY } from '@modelcontextprotocol/server';
import { type Era, MODERN_REVISIONS } from './wire.js';

/**
 * The era of a JSON-RPC message in the shape nearly every request has, decided without the SDK's
 * full classification (which validates the whole message against its schemas on every request):
 * a strict JSON-RPC request (only jsonrpc, id, method, params; an integer or string id; a plain
 * params object whose `_meta` holds nothing but a progress token and the envelope) that is not the
 * 2025 handshake. Anything else is `undefined`, and the transport leaves the message to the SDK;
 * test/protocol/differential.test.ts holds the two together. The transport checks its own framing
 * (HTTP's standard headers) on top.
 */
export interface Canonical {
  readonly era: Era;
  /** The revision a 2026-07-28 envelope claims. */
  readonly revision?: string;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RELATED_TASK_META_KEY = 'io.modelcontextprotocol/related-task';

/** Envelopes (less their progress token) already judged, by their JSON: a client sends the same one every time. */
const envelopeVerdicts = new Map<string, boolean>();
const MAX_ENVELOPE_VERDICTS = 256;
/** Envelopes longer than this are judged every time, not kept: a client's padding must not fill memory. */
const MAX_REMEMBERED_ENVELOPE = 2048;

/** Whether a 2026-07-28 `_meta` envelope is valid, as the SDK's classification judges it, remembered. */
function validEnvelope(meta: Record<string, unknown>): boolean {
  const { progressToken: _token, ...rest } = meta;
  const key = JSON.stringify(rest);
  let verdict = envelopeVerdicts.get(key);
  if (verdict === undefined) {
    const probe = { jsonrpc: '2.0', id: 0, method: 'tools/list', params: { _meta: rest } };
    verdict = classifyInboundRequest({ httpMethod: 'POST', body: probe }).kind === 'modern';
    if (key.length > MAX_REMEMBERED_ENVELOPE) return verdict;
    if (envelopeVerdicts.size >= MAX_ENVELOPE_VERDICTS) envelopeVerdicts.clear();
    envelopeVerdicts.set(key, verdict);
  }
  return verdict;
}

export function canonicalRequest(body: unknown): Canonical | undefined {
  if (!isPlainObject(body)) return undefined;
  if (body.jsonrpc !== '2.0' || typeof body.method !== 'string' || body.method === 'initialize') return undefined;
  const { id, params } = body;
  if (typeof id !== 'string' && !Number.isInteger(id)) return undefined;
  for (const key in body) if (!REQUEST_KEYS.has(key)) return undefined;
  if (params !== undefined && !isPlainObject(params)) return undefined;
  const meta = params?._meta;
  if (meta !== undefined && !isPlainObject(meta)) return undefined;
  const token = meta?.progressToken;
  if (token !== undefined && typeof token !== 'string' && !Number.isInteger(token)) return undefined;
  if (meta !== undefined && RELATED_TASK_META_KEY in meta) return undefined;
  if (meta === undefined || !(PROTOCOL_VERSION_META_KEY in meta)) return { era: 'legacy' };
  const claimed = meta[PROTOCOL_VERSION_META_KEY];
  if (typeof claimed !== 'string' || !MODERN_REVISIONS.includes(claimed)) return undefined;
  return validEnvelope(meta) ? { era: 'modern', revision: claimed } : undefined;
}
