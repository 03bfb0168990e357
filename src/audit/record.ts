/** Where a request came in. */
export type Transport = 'http' | 'stdio' | 'cli';

/** How an attempt ended. `denied` always pairs with decision `deny`. */
export type Outcome = 'ok' | 'denied' | 'error' | 'cancelled';

/**
 * One access attempt, allowed or denied: one JSON line in the audit log. Paths are root-relative;
 * the record never holds a host path, a token or file contents.
 */
export interface AuditRecord {
  readonly time: string;
  /** Its place in this process's chain: 0 for the genesis record, then one more per record. */
  readonly seq: number;
  readonly requestId: string;
  readonly principal: string;
  /** The client's own name (clientInfo.name), else its User-Agent; null when neither is known. */
  readonly client: string | null;
  /** The HTTP User-Agent, bounded and sanitised; null over stdio and when none was sent. */
  readonly userAgent: string | null;
  readonly transport: Transport;
  readonly method: string;
  readonly tool: string | null;
  readonly root: string | null;
  /** Canonical root-relative path, when the request could be attributed to a root. */
  readonly path: string | null;
  /** What the client asked for, verbatim (truncated): the evidence when someone probes. */
  readonly requested: string;
  readonly op: string;
  readonly decision: 'allow' | 'deny';
  readonly rule: string;
  readonly reason: string;
  readonly bytes: number | null;
  readonly durationMs: number;
  readonly outcome: Outcome;
  /** The error code when outcome is `error` (a catalogue code, or INTERNAL). */
  readonly error?: string;
  /** A statement on a database (op `query`): which database, the statement and what it read. */
  readonly database?: DatabaseAccess;
  /** The OpenTelemetry trace the access happened in, when tracing is on. */
  readonly traceId?: string;
  /** The genesis record (`op: genesis`): which process starts the chain, under which configuration. */
  readonly process?: ProcessStart;
  /** A reload (`op: reload`): the configuration file's hash before and after. */
  readonly config?: { readonly before: string; readonly after: string; readonly kept: readonly string[] };
  /**
   * A new audit file (`op: rotate`), the first record in it: why, and the name the file before
   * it took (null when logrotate moved it: a reopen).
   */
  readonly rotation?: { readonly reason: 'size' | 'time' | 'reopen'; readonly previous: string | null };
  /** The hash of the record before (GENESIS_PREV for the first of a process). */
  readonly prev: string;
  /** SHA-256 (or HMAC-SHA-256) over the canonical JSON of this record without this field. */
  readonly hash: string;
}

/** What the first record of a process says about it. */
export interface ProcessStart {
  readonly version: string;
  readonly host: string;
  readonly pid: number;
  /** SHA-256 of the configuration file as read at start. */
  readonly configSha256: string;
  readonly chain: 'sha256' | 'hmac-sha256';
}

/**
 * What a database record adds. The statement is kept as its fingerprint (literals replaced by `?`
 * by the database's own normaliser, bounded) and the SHA-256 of its text: never its parameters,
 * never a literal that may be a secret.
 */
export interface DatabaseAccess {
  readonly name: string;
  readonly fingerprint: string | null;
  readonly sha256: string;
  /** The tables it read (views expanded), as the database's planner said. */
  readonly tables: readonly string[];
  readonly rows: number | null;
}
