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

/** The policy's answer on what a statement touches: the engine runs it only when allowed. */
export type Judge = (
  touched: Touched,
  columnsOf: (table: string) => readonly string[] | undefined,
) => { readonly allow: boolean };

/** What became of one statement: refused by the planner check, denied by the judge, or run. */
export type Execution =
  | ({ readonly kind: 'refused'; readonly fingerprint: string | null } & PlanRefusal)
  | { readonly kind: 'denied'; readonly fingerprint: string; readonly tables: readonly string[] }
  | {
      readonly kind: 'ran';
      readonly fingerprint: string;
      readonly tables: readonly string[];
      readonly rows: QueryRows;
    };

export interface StatementLimits {
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

/** One configured database, whatever its driver. */
export interface DatabaseEngine {
  /** Its tables and views with their columns, before the policy filters them. */
  describe(timeoutMs: number, signal?: AbortSignal): Promise<TableInfo[]>;
  /** Plans one statement with the database's own planner, asks `judge`, and runs it only if allowed. */
  execute(
    sql: string,
    params: readonly Parameter[],
    limits: StatementLimits,
    judge: Judge,
    signal?: AbortSignal,
  ): Promise<Execution>;
  close(): Promise<void>;
}

/** The columns a plan reads, table by table, as an analysis finds them. */
export class ColumnReads extends Map<string, Set<string>> {
  read(table: string, column: string): void {
    let columns = this.get(table);
    if (!columns) {
      columns = new Set();
      this.set(table, columns);
    }
    columns.add(column);
  }
}
