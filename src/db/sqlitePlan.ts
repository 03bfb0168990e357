import { ColumnReads, type PlanRefusal, type Touched } from './types.js';

/**
 * What a SQLite statement touches, read from the bytecode SQLite compiled it to (`EXPLAIN`),
 * never from its text: the b-trees it opens (tables, and indexes mapped to their tables; views are
 * already expanded to the tables they read), the columns it reads from them, the functions it
 * calls. Deny by default: an opcode this check does not know is refused, as is anything that
 * writes, attaches, or reaches a virtual table (which could be anything, `sqlite_dbpage` included).
 */

/** One EXPLAIN row: opcode, p1, p2, p3, p4 (as text). */
export type ExplainRow = readonly [string, number, number, number, string | null];

export interface SqliteSchema {
  readonly tables: readonly {
    readonly name: string;
    readonly rootpage: number;
    readonly columns: readonly { name: string; type: string; primaryKey: boolean; pk: number; hidden: number }[];
    readonly virtual: boolean;
    readonly withoutRowid: boolean;
  }[];
  readonly indexes: readonly {
    readonly name: string;
    readonly table: string;
    readonly rootpage: number;
    /** Per key column: its name, '' for the rowid, null for an expression. */
    readonly columns: readonly (string | null)[];
  }[];
  readonly views: readonly { readonly name: string; readonly columns: readonly { name: string; type: string }[] }[];
}

/** Read-only opcodes of a SELECT's program, on any cursor. */
const READING = new Set([
  'Abortable',
  'Add',
  'AddImm',
  'Affinity',
  'AggFinal',
  'AggInverse',
  'AggStep',
  'AggStep1',
  'AggValue',
  'And',
  'BeginSubrtn',
  'BitAnd',
  'BitNot',
  'BitOr',
  'Blob',
  'Cast',
  'ClrSubtype',
  'Close',
  'CollSeq',
  'Column',
  'ColumnsUsed',
  'Compare',
  'Concat',
  'Copy',
  'Count',
  'CursorHint',
  'DecrJumpZero',
  'DeferredSeek',
  'Divide',
  'ElseEq',
  'EndCoroutine',
  'Eq',
  'Filter',
  'FilterAdd',
  'FinishSeek',
  'Found',
  'Function',
  'Ge',
  'GetSubtype',
  'Gosub',
  'Goto',
  'Gt',
  'Halt',
  'HaltIfNull',
  'IdxGE',
  'IdxGT',
  'IdxLE',
  'IdxLT',
  'IdxRowid',
  'If',
  'IfEmpty',
  'IfNoHope',
  'IfNot',
  'IfNotOpen',
  'IfNotZero',
  'IfNullRow',
  'IfPos',
  'IfSizeBetween',
  'Init',
  'InitCoroutine',
  'Int64',
  'IntCopy',
  'Integer',
  'IsNull',
  'IsTrue',
  'IsType',
  'Jump',
  'Last',
  'Le',
  'Lt',
  'MakeRecord',
  'MemMax',
  'Move',
  'Multiply',
  'MustBeInt',
  'Ne',
  'Next',
  'Noop',
  'Not',
  'NotExists',
  'NotFound',
  'NotNull',
  'Null',
  'NullRow',
  'Offset',
  'OffsetLimit',
  'Once',
  'OpenAutoindex',
  'OpenDup',
  'OpenEphemeral',
  'OpenPseudo',
  'OpenRead',
  'Or',
  'Permutation',
  'Prev',
  'PureFunc',
  'Real',
  'RealAffinity',
  'ReleaseReg',
  'Remainder',
  'ReopenIdx',
  'ResultRow',
  'Return',
  'Rewind',
  'RowData',
  'RowSetAdd',
  'RowSetRead',
  'RowSetTest',
  'Rowid',
  'SCopy',
  'SeekGE',
  'SeekGT',
  'SeekHit',
  'SeekLE',
  'SeekLT',
  'SeekRowid',
  'SeekScan',
  'Sequence',
  'SequenceTest',
  'SetSubtype',
  'ShiftLeft',
  'ShiftRight',
  'SoftNull',
  'Sort',
  'SorterCompare',
  'SorterData',
  'SorterInsert',
  'SorterNext',
  'SorterOpen',
  'SorterSort',
  'String',
  'String8',
  'Subtract',
  'Transaction',
  'TypeCheck',
  'Variable',
  'Yield',
  'ZeroOrNull',
]);

/** Opcodes that change a b-tree: allowed only on a cursor of the statement's own (ephemeral) tables. */
const SCRATCH_WRITES = new Set(['Insert', 'Delete', 'IdxInsert', 'IdxDelete', 'NewRowid', 'ResetSorter']);

/** Opcodes that open a cursor on a scratch table the statement makes itself (CTEs, sorting, DISTINCT). */
const SCRATCH_OPENS = new Set(['OpenEphemeral', 'OpenAutoindex', 'OpenPseudo', 'SorterOpen']);

/**
 * Opcodes that compare a key with the entry under an index cursor: a seek reads the key columns it
 * compares (p4 says how many, from the first) as surely as a Column does, so a WHERE on an indexed
 * column, or on an expression index over it, reads that column.
 */
const KEY_COMPARES = new Set([
  'SeekGE',
  'SeekGT',
  'SeekLE',
  'SeekLT',
  'IdxGE',
  'IdxGT',
  'IdxLE',
  'IdxLT',
  'Found',
  'NotFound',
  'NoConflict',
  'IfNoHope',
]);

/** Opcodes that read the rowid of the row under a cursor (an INTEGER PRIMARY KEY column is the rowid). */
const ROWID_READS = new Set(['Rowid', 'IdxRowid', 'SeekRowid', 'NotExists', 'DeferredSeek']);

/**
 * Functions with no effect beyond their result and no reach outside the statement: SQLite's core
 * scalar, aggregate, window, date, math and JSON functions. Anything else is refused
 * (sqlite_attach, load_extension, fts3_tokenizer, functions of extensions, ...).
 */
const SAFE_FUNCTIONS = new Set([
  'abs',
  'acos',
  'acosh',
  'asin',
  'asinh',
  'atan',
  'atan2',
  'atanh',
  'avg',
  'ceil',
  'ceiling',
  'char',
  'coalesce',
  'concat',
  'concat_ws',
  'cos',
  'cosh',
  'count',
  'cume_dist',
  'date',
  'datetime',
  'degrees',
  'dense_rank',
  'exp',
  'first_value',
  'floor',
  'glob',
  'group_concat',
  'hex',
  'ifnull',
  'iif',
  'instr',
  'json',
  'json_array',
  'json_array_length',
  'json_extract',
  'json_group_array',
  'json_group_object',
  'json_object',
  'json_quote',
  'json_type',
  'json_valid',
  'julianday',
  'lag',
  'last_value',
  'lead',
  'length',
  'like',
  'likelihood',
  'likely',
  'ln',
  'log',
  'log10',
  'log2',
  'lower',
  'ltrim',
  'max',
  'min',
  'mod',
  'nth_value',
  'ntile',
  'nullif',
  'octet_length',
  'percent_rank',
  'pi',
  'pow',
  'power',
  'quote',
  'radians',
  'rank',
  'replace',
  'round',
  'row_number',
  'rtrim',
  'sign',
  'sin',
  'sinh',
  'sqrt',
  'strftime',
  'string_agg',
  'substr',
  'substring',
  'sum',
  'tan',
  'tanh',
  'time',
  'timediff',
  'total',
  'trim',
  'trunc',
  'typeof',
  'unhex',
  'unicode',
  'unixepoch',
  'unlikely',
  'upper',
  '->',
  '->>',
]);

/** Statements that only read, by their first keyword as SQLite's normaliser writes it. */
const READ_STATEMENTS = new Set(['SELECT', 'WITH', 'VALUES']);

type Cursor =
  | { readonly kind: 'table'; readonly table: string }
  | { readonly kind: 'index'; readonly table: string; readonly columns: readonly (string | null)[] }
  | { readonly kind: 'scratch' };

const refuse = (rule: string, reason: string): PlanRefusal => ({ rule, reason });

/** The refusal of a statement this check will not let run, or what it touches. */
export function analyseSqlite(
  fingerprint: string,
  program: readonly ExplainRow[],
  schema: SqliteSchema,
): Touched | PlanRefusal {
  const keyword = fingerprint.split(/[^A-Z]/, 1)[0] ?? '';
  if (!READ_STATEMENTS.has(keyword)) {
    return refuse(
      'sql:not-a-query',
      `only a single SELECT (or WITH ... SELECT, VALUES) may run, not ${keyword || 'this'}`,
    );
  }
  const byRoot = new Map<number, Cursor>();
  const tables = new Map(schema.tables.map((table) => [table.name, table]));
  for (const table of schema.tables) {
    if (!table.virtual) byRoot.set(table.rootpage, { kind: 'table', table: table.name });
  }
  for (const index of schema.indexes) {
    byRoot.set(index.rootpage, { kind: 'index', table: index.table, columns: index.columns });
  }
  const cursors = new Map<number, Cursor>();
  const touchedTables = new Set<string>();
  const columns = new ColumnReads();
  const functions = new Set<string>();
  // Column order per table, made once: a program reads columns in every loop it has.
  const stored = new Map<string, string[]>();
  const read = (table: string, column: string) => columns.read(table, column);
  /** A read of the rowid: the INTEGER PRIMARY KEY column, when the table has one. */
  const readRowid = (table: string) => {
    const info = tables.get(table);
    const keys = info?.columns.filter((column) => column.primaryKey) ?? [];
    if (keys.length === 1 && keys[0]?.type.toUpperCase() === 'INTEGER') read(table, keys[0].name);
  };

  for (const [opcode, p1, p2, p3, p4] of program) {
    if (opcode === 'Transaction') {
      if (p1 !== 0) return refuse('sql:other-database', 'the statement reaches a database other than this one');
      if (p2 !== 0) return refuse('sql:write', 'the statement would write');
      continue;
    }
    if (opcode === 'OpenRead' || opcode === 'ReopenIdx') {
      if (p3 !== 0) return refuse('sql:other-database', 'the statement reaches a database other than this one');
      const cursor = byRoot.get(p2);
      if (!cursor) return refuse('sql:unknown-object', 'the statement opens a b-tree that is no known table or index');
      cursors.set(p1, cursor);
      if (cursor.kind !== 'scratch') touchedTables.add(cursor.table);
      continue;
    }
    if (opcode === 'OpenDup') {
      const original = cursors.get(p2);
      if (original) cursors.set(p1, original);
      continue;
    }
    if (SCRATCH_OPENS.has(opcode)) {
      cursors.set(p1, { kind: 'scratch' });
      continue;
    }
    if (SCRATCH_WRITES.has(opcode)) {
      if (cursors.get(p1)?.kind !== 'scratch') return refuse('sql:write', 'the statement would write');
      continue;
    }
    if (!READING.has(opcode)) {
      if (opcode.startsWith('V')) {
        return refuse('sql:virtual-table', 'virtual tables (table-valued functions, sqlite_dbpage, ...) are refused');
      }
      return refuse('sql:unsupported', `the statement compiles to an operation mcpd does not allow (${opcode})`);
    }
    if (opcode === 'Function' || opcode === 'PureFunc' || opcode.startsWith('Agg')) {
      const name = (p4 ?? '').replace(/\(-?\d+\)$/, '').toLowerCase();
      if (opcode.startsWith('Agg') && name === '') continue;
      if (!SAFE_FUNCTIONS.has(name))
        return refuse('sql:function', `the function ${name || '(unnamed)'} is not allowed`);
      functions.add(name);
      continue;
    }
    const cursor = cursors.get(p1);
    if (!cursor || cursor.kind === 'scratch') continue;
    if (opcode === 'Column') {
      const table = tables.get(cursor.table);
      if (cursor.kind === 'index') {
        const column = cursor.columns[p2];
        if (column === undefined) read(cursor.table, '*');
        else if (column === '') readRowid(cursor.table);
        else if (column === null) read(cursor.table, '*');
        else read(cursor.table, column);
      } else if (!table) {
        read(cursor.table, '*');
      } else {
        let order = stored.get(table.name);
        if (!order) {
          order = storageOrder(table);
          stored.set(table.name, order);
        }
        read(cursor.table, order[p2] ?? '*');
      }
      continue;
    }
    if (cursor.kind === 'index' && KEY_COMPARES.has(opcode)) {
      const compared = Number(p4);
      const keys = Number.isInteger(compared) && compared > 0 ? cursor.columns.slice(0, compared) : cursor.columns;
      for (const column of keys) {
        if (column === '') readRowid(cursor.table);
        else read(cursor.table, column ?? '*');
      }
      continue;
    }
    if (ROWID_READS.has(opcode)) readRowid(cursor.table);
  }
  return { tables: touchedTables, columns, functions };
}

/**
 * The columns of a table in the order a Column opcode counts them: for a rowid table, the stored
 * columns in declaration order, then the generated VIRTUAL ones (SQLite computes those from the
 * others); for a WITHOUT ROWID table, its primary key columns first, in key order, then the rest.
 */
function storageOrder(table: SqliteSchema['tables'][number]): string[] {
  const stored = table.columns.filter((column) => column.hidden !== 2);
  const computed = table.columns.filter((column) => column.hidden === 2).map((column) => column.name);
  if (!table.withoutRowid) return [...stored.map((column) => column.name), ...computed];
  const key = stored.filter((column) => column.pk > 0).sort((a, b) => a.pk - b.pk);
  const rest = stored.filter((column) => column.pk === 0);
  return [...key, ...rest].map((column) => column.name).concat(computed);
}
