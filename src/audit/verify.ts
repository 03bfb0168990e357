import { readFile } from 'node:fs/promises';
import { GENESIS_PREV, recordHash } from './chain.js';

/**
 * Checks audit files for what the chain proves: read in the order given (a rotated file first),
 * every record must hash to its own `hash`, name the hash of the record before it as `prev`, and
 * carry the next sequence number. A genesis record (`seq` 0) starts the chain of a new process.
 * What is found is named where it is: an edited record, a missing run of records, records out of
 * order, a broken link, a line that is not a record, and a truncated last line.
 */

export type ProblemKind = 'edited' | 'missing' | 'reordered' | 'broken-link' | 'corrupt' | 'truncated' | 'keyed';

export interface Problem {
  readonly kind: ProblemKind;
  readonly file: string;
  /** 1-based line in `file`. */
  readonly line: number;
  /** The record's sequence number, when it has one. */
  readonly seq: number | null;
  readonly detail: string;
}

export interface Verification {
  readonly ok: boolean;
  readonly records: number;
  /** Chains (processes) seen: each genesis record starts one. */
  readonly chains: number;
  readonly problems: readonly Problem[];
  /** What is not a problem but worth saying (the first chain starts mid-way: its earlier files were not given). */
  readonly notes: readonly string[];
}

/** At most this many problems are listed: a file edited throughout says so in its first ones. */
const MAX_PROBLEMS = 100;

interface Linked {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly process?: { readonly chain?: string };
}

function isLinked(value: unknown): value is Linked & Record<string, unknown> {
  const record = value as Partial<Linked> | null;
  return (
    record !== null &&
    typeof record === 'object' &&
    Number.isInteger(record.seq) &&
    typeof record.prev === 'string' &&
    typeof record.hash === 'string'
  );
}

export function verifyAudit(files: readonly { name: string; text: string }[], key: Buffer | null): Verification {
  const problems: Problem[] = [];
  const notes: string[] = [];
  let records = 0;
  let chains = 0;
  let last: Linked | undefined;
  const report = (problem: Problem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(problem);
  };
  for (const [fileIndex, { name, text }] of files.entries()) {
    const lines = text.split('\n');
    const endsCleanly = text.endsWith('\n') || text.length === 0;
    if (endsCleanly) lines.pop();
    for (const [index, line] of lines.entries()) {
      const at = { file: name, line: index + 1 };
      const isLast = fileIndex === files.length - 1 && index === lines.length - 1;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      if (!isLinked(value)) {
        const truncated = isLast && !endsCleanly;
        report({
          ...at,
          kind: truncated ? 'truncated' : 'corrupt',
          seq: null,
          detail: truncated ? 'the last line ends mid-record' : 'not an audit record of the chain',
        });
        continue;
      }
      records += 1;
      const record = value;
      if (record.seq === 0 && record.process?.chain === 'hmac-sha256' && key === null) {
        report({ ...at, kind: 'keyed', seq: 0, detail: 'this chain is keyed (HMAC): give its key to verify it' });
        return { ok: false, records, chains: chains + 1, problems, notes };
      }
      if (recordHash(record, key) !== record.hash) {
        report({
          ...at,
          kind: 'edited',
          seq: record.seq,
          detail: 'the record does not hash to its own hash: it was changed',
        });
      }
      if (record.seq === 0) {
        chains += 1;
        if (record.prev !== GENESIS_PREV) {
          report({ ...at, kind: 'broken-link', seq: 0, detail: 'a genesis record must name no record before it' });
        }
      } else if (last === undefined) {
        chains += 1;
        notes.push(`${name}:${at.line}: the chain starts at seq ${record.seq} (earlier files were not given)`);
      } else if (record.seq === last.seq + 1) {
        if (record.prev !== last.hash) {
          report({
            ...at,
            kind: 'broken-link',
            seq: record.seq,
            detail: 'prev is not the hash of the record before it',
          });
        }
      } else if (record.seq > last.seq + 1) {
        report({
          ...at,
          kind: 'missing',
          seq: record.seq,
          detail:
            record.seq === last.seq + 2
              ? `record ${last.seq + 1} is missing`
              : `records ${last.seq + 1} to ${record.seq - 1} are missing`,
        });
      } else {
        report({
          ...at,
          kind: 'reordered',
          seq: record.seq,
          detail: `seq ${record.seq} comes after seq ${last.seq}: records are out of order or repeated`,
        });
      }
      last = record;
    }
  }
  return { ok: problems.length === 0, records, chains, problems, notes };
}

/** Reads the files (in the order given) and verifies them as one sequence. Throws when one cannot be read. */
export async function verifyAuditFiles(paths: readonly string[], key: Buffer | null): Promise<Verification> {
  const files = await Promise.all(paths.map(async (name) => ({ name, text: await readFile(name, 'utf8') })));
  return verifyAudit(files, key);
}

/** An HMAC key from a file, as the config reads one (trimmed). */
export async function readKeyFile(path: string): Promise<Buffer> {
  return Buffer.from((await readFile(path, 'utf8')).trim());
}
