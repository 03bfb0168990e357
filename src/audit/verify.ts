import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
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

/**
 * The chain checked one line at a time, so that a log of any size is verified in bounded memory:
 * only the record before is kept.
 */
export class ChainVerifier {
  private readonly problems: Problem[] = [];
  private readonly notes: string[] = [];
  private records = 0;
  private chains = 0;
  private last: Linked | undefined;
  private stopped = false;

  constructor(private readonly key: Buffer | null) {}

  /**
   * One line of `file` (1-based `line`). `unterminated`: it is the last line given and the file
   * does not end with a newline, so a line that is not a record there was cut short.
   */
  line(file: string, line: number, text: string, unterminated = false): void {
    if (this.stopped) return;
    const at = { file, line };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (!isLinked(value)) {
      this.report({
        ...at,
        kind: unterminated ? 'truncated' : 'corrupt',
        seq: null,
        detail: unterminated ? 'the last line ends mid-record' : 'not an audit record of the chain',
      });
      return;
    }
    this.records += 1;
    const record = value;
    if (record.seq === 0 && record.process?.chain === 'hmac-sha256' && this.key === null) {
      this.report({ ...at, kind: 'keyed', seq: 0, detail: 'this chain is keyed (HMAC): give its key to verify it' });
      this.chains += 1;
      this.stopped = true;
      return;
    }
    if (recordHash(record, this.key) !== record.hash) {
      this.report({
        ...at,
        kind: 'edited',
        seq: record.seq,
        detail: 'the record does not hash to its own hash: it was changed',
      });
    }
    const last = this.last;
    if (record.seq === 0) {
      this.chains += 1;
      if (record.prev !== GENESIS_PREV) {
        this.report({ ...at, kind: 'broken-link', seq: 0, detail: 'a genesis record must name no record before it' });
      }
    } else if (last === undefined) {
      this.chains += 1;
      this.notes.push(`${file}:${line}: the chain starts at seq ${record.seq} (earlier files were not given)`);
    } else if (record.seq === last.seq + 1) {
      if (record.prev !== last.hash) {
        this.report({
          ...at,
          kind: 'broken-link',
          seq: record.seq,
          detail: 'prev is not the hash of the record before it',
        });
      }
    } else if (record.seq > last.seq + 1) {
      this.report({
        ...at,
        kind: 'missing',
        seq: record.seq,
        detail:
          record.seq === last.seq + 2
            ? `record ${last.seq + 1} is missing`
            : `records ${last.seq + 1} to ${record.seq - 1} are missing`,
      });
    } else {
      this.report({
        ...at,
        kind: 'reordered',
        seq: record.seq,
        detail: `seq ${record.seq} comes after seq ${last.seq}: records are out of order or repeated`,
      });
    }
    this.last = { seq: record.seq, prev: record.prev, hash: record.hash };
  }

  result(): Verification {
    const { problems, notes, records, chains } = this;
    return { ok: problems.length === 0, records, chains, problems: [...problems], notes: [...notes] };
  }

  private report(problem: Problem): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(problem);
  }
}

/**
 * Reads the files (in the order given) a line at a time and verifies them as one sequence: memory
 * stays bounded by the longest line, whatever the size of the logs. Throws when one cannot be read.
 */
export async function verifyAuditFiles(paths: readonly string[], key: Buffer | null): Promise<Verification> {
  // Every file is checked readable before any is read (an unreadable one is a usage error, not a
  // broken chain), then opened one at a time: a year of hourly files needs one descriptor, not 9,000.
  await Promise.all(paths.map((path) => access(path, constants.R_OK)));
  const verifier = new ChainVerifier(key);
  for (const [fileIndex, name] of paths.entries()) {
    const handle = await open(name, 'r');
    try {
      const { size } = await handle.stat();
      const lastByte = Buffer.alloc(1);
      if (size > 0) await handle.read(lastByte, 0, 1, size - 1);
      const endsCleanly = size === 0 || lastByte[0] === 0x0a;
      const lines = createInterface({
        input: handle.createReadStream({ start: 0, autoClose: false }),
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      // One line held back, so the last one is known as such.
      let held: { text: string; number: number } | undefined;
      let number = 0;
      for await (const text of lines) {
        number += 1;
        if (held) verifier.line(name, held.number, held.text);
        held = { text, number };
      }
      if (held) verifier.line(name, held.number, held.text, fileIndex === paths.length - 1 && !endsCleanly);
    } finally {
      await handle.close();
    }
  }
  return verifier.result();
}

/** An HMAC key from a file, as the config reads one (trimmed). */
export async function readKeyFile(path: string): Promise<Buffer> {
  return Buffer.from((await readFile(path, 'utf8')).trim());
}
