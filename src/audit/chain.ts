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
export function canonicalJson(value: unknown, omit?: string): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += `${i === 0 ? '' : ','}${canonicalJson(value[i] ?? null)}`;
    return `${out}]`;
  }
  // Every record is hashed on the audit path: plain loops, and each key quoted once per process.
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined || key === omit) continue;
    out += `${first ? '' : ','}${quoted(key)}:${canonicalJson(item)}`;
    first = false;
  }
  return `${out}}`;
}

const QUOTED = new Map<string, string>();

/** A key as JSON, remembered for the few dozen keys records have (bounded, should a record bring odd ones). */
function quoted(key: string): string {
  let text = QUOTED.get(key);
  if (text === undefined) {
    text = JSON.stringify(key);
    if (QUOTED.size < 512) QUOTED.set(key, text);
  }
  return text;
}

/** The hash of a record's canonical JSON (its own `hash` field left out). */
export function recordHash(record: Record<string, unknown>, key: Buffer | null): string {
  return digest(canonicalJson(record, 'hash'), key);
}

function digest(text: string, key: Buffer | null): string {
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

  /**
   * Links a record in place (the audit path's one object per record, no copies): its `seq` and
   * `prev` set, then its `hash` over everything else.
   */
  link<T extends { seq: number; prev: string; hash: string }>(record: T): T {
    record.seq = this.seq;
    record.prev = this.prev;
    const hash = recordHash(record, this.key);
    record.hash = hash;
    this.seq += 1;
    this.prev = hash;
    return record;
  }
}
