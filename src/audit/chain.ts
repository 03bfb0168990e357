import { createHash, createHmac } from 'node:crypto';

/**
 * The audit log as evidence: every record carries its sequence number in the process, the hash of
 * the record before it, and its own hash, SHA-256 (or HMAC-SHA-256 with a key) over the canonical
 * JSON of the record without that hash. Deleting, editing, reordering or truncating records breaks
 * the chain where it happened; with a key, whoever can write the file cannot recompute it.
 */

/** What the first record of a process names as the hash before it. */
export const GENESIS_PREV = '0'.repeat(64);

export type ChainAlgorithm = 'sha256' | 'hmac-sha256';

/**
 * JSON with object keys sorted at every depth and no whitespace: the one serialisation the hash
 * is computed over, so that a verifier reading the line back computes the same bytes.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

/** The hash of a record's canonical JSON (its own `hash` field left out). */
export function recordHash(record: Record<string, unknown>, key: Buffer | null): string {
  const { hash: _hash, ...body } = record;
  const text = canonicalJson(body);
  return key ? createHmac('sha256', key).update(text).digest('hex') : createHash('sha256').update(text).digest('hex');
}

/** Links each record to the one before it; one per process (a restart starts a new chain with a genesis record). */
export class AuditChain {
  private seq = 0;
  private prev = GENESIS_PREV;

  constructor(private readonly key: Buffer | null) {}

  get algorithm(): ChainAlgorithm {
    return this.key ? 'hmac-sha256' : 'sha256';
  }

  /** The record with its place in the chain: `seq` and `prev` added, then its `hash`. */
  seal<T extends Record<string, unknown>>(record: T): T & { seq: number; prev: string; hash: string } {
    const linked = { ...record, seq: this.seq, prev: this.prev };
    const hash = recordHash(linked, this.key);
    this.seq += 1;
    this.prev = hash;
    return { ...linked, hash };
  }
}
