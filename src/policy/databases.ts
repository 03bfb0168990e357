import type { DatabaseConfig } from '../config/schema.js';
import { GlobList } from '../globs.js';

/**
 * What of a database may be seen, in the style of a root's policy: a table (or view) is visible
 * when a `tables` glob names it and no exclude does; a column of it when no exclude names the
 * column or `table.column`. Excludes, the built-in ones among them, always win. Names are matched
 * case-insensitively, as SQLite and PostgreSQL (unquoted) match them.
 */
export class DatabasePolicy {
  private readonly tables: GlobList;
  private readonly exclude: GlobList;

  constructor(readonly database: DatabaseConfig) {
    this.tables = new GlobList(database.tables, { caseInsensitive: true });
    this.exclude = new GlobList(database.exclude, { caseInsensitive: true });
  }

  /** The rule that hides `table`, or undefined when it is visible. */
  tableRule(table: string): string | undefined {
    const excluded = this.exclude.match(table);
    if (excluded) return `exclude:${excluded}`;
    return this.tables.match(table) === undefined ? 'default-deny:table' : undefined;
  }

  /** The rule that hides `column` of `table`, or undefined when it is visible (its table aside). */
  columnRule(table: string, column: string): string | undefined {
    const excluded = this.exclude.match(column) ?? this.exclude.match(`${table}.${column}`);
    return excluded ? `exclude:${excluded}` : undefined;
  }

  /** The glob that lets `table` be read, for the audit record of an allowed statement. */
  tableGrant(table: string): string | undefined {
    return this.tables.match(table);
  }
}

/** The verdict on what one statement touches. */
export type StatementDecision =
  | { readonly allow: true; readonly rule: string; readonly reason: string }
  | { readonly allow: false; readonly rule: string; readonly reason: string; readonly shown: string };

/**
 * Judges a planned statement: every table it reads must be visible, and every column of them it
 * reads. `shown` is what the client is told: a table that is not visible is named as unknown
 * (as if it did not exist); a hidden column is never named, since `SELECT *` may reach it
 * without the client having named it.
 */
export function judgeStatement(
  policy: DatabasePolicy,
  touched: { readonly tables: ReadonlySet<string>; readonly columns: ReadonlyMap<string, ReadonlySet<string>> },
  columnsOf: (table: string) => readonly string[] | undefined,
): StatementDecision {
  for (const table of [...touched.tables].sort()) {
    const rule = policy.tableRule(table);
    if (rule) {
      return {
        allow: false,
        rule,
        reason: `reads table ${JSON.stringify(table)}, which is not visible`,
        shown: `no such table: ${table}`,
      };
    }
  }
  for (const [table, columns] of touched.columns) {
    for (const column of columns) {
      // A read the planner could not narrow to named columns (an expression index, a WITHOUT
      // ROWID table) counts as reading every column of the table.
      const hidden =
        column === '*' ? wholeTableRule(policy, table, columnsOf(table)) : policy.columnRule(table, column);
      if (hidden) {
        return {
          allow: false,
          rule: hidden,
          reason: `reads ${column === '*' ? 'every column' : `column ${JSON.stringify(column)}`} of ${JSON.stringify(table)}, which is not visible`,
          shown: `the statement reads a column of ${table} that is not visible (name the columns you need; describe_database lists them)`,
        };
      }
    }
  }
  const tables = [...touched.tables].sort();
  const grants = [...new Set(tables.map((table) => policy.tableGrant(table)))];
  return {
    allow: true,
    rule: tables.length === 0 ? 'sql:no-table' : `tables:${grants.join(',')}`,
    reason: tables.length === 0 ? 'reads no table' : `reads ${tables.map((table) => JSON.stringify(table)).join(', ')}`,
  };
}

/** A whole-table read, judged column by column (refused when the columns are not known). */
function wholeTableRule(policy: DatabasePolicy, table: string, columns: readonly string[] | undefined) {
  if (!columns) return 'sql:whole-table';
  for (const column of columns) {
    const rule = policy.columnRule(table, column);
    if (rule) return rule;
  }
  return undefined;
}
