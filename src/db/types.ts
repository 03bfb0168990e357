/** What the database layer tells the rest of mcpd: driver-neutral shapes, no driver types. */

export interface ColumnInfo {
  readonly name: string;
  /** The declared type, as the database names it ('' when none). */
  readonly type: string;
}

export interface TableInfo {
  readonly name: string;
  readonly kind: 'table' | 'view';
  readonly columns: readonly ColumnInfo[];
}

/**
 * What one statement touches, as the database's own planner says: every table it reads (views
 * expanded to theirs), every column of them it reads, every function it calls.
 */
export interface Touched {
  readonly tables: ReadonlySet<string>;
  /** Table name to the columns of it read; a table read whole (no finer answer) maps to '*'. */
  readonly columns: ReadonlyMap<string, ReadonlySet<string>>;
  readonly functions: ReadonlySet<string>;
}

/** A statement the planner check refuses outright, whatever the policy: a write, an attach, ... */
export interface PlanRefusal {
  readonly rule: string;
  readonly reason: string;
}

/** One statement, planned: its fingerprint (literals removed, by the database) and what it touches. */
export type Plan =
  | { readonly ok: true; readonly fingerprint: string; readonly touched: Touched; readonly generation: string }
  | ({ readonly ok: false; readonly fingerprint: string | null } & PlanRefusal);

export type Cell = string | number | null | { readonly base64: string };

export interface QueryRows {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  /** Why the rows stop early: the row cap or the result-size cap; null when all are there. */
  readonly truncated: 'rows' | 'bytes' | null;
  readonly bytes: number;
}

/** A value bound to a statement's parameter: never part of its text, never in the audit log. */
export type Parameter = string | number | boolean | null;
