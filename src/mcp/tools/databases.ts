import type { ContentBlock } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { defineTool, READ_ONLY } from '../toolkit.js';

/**
 * The database tools: which databases there are, what of them is visible, and one read-only
 * statement at a time. Every answer is structured, and its text says the same thing compactly.
 */

const databaseName = z.string().min(1).max(200).describe('The database name, as list_databases shows it.');

const listOutput = z.object({
  databases: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      driver: z.string(),
      policy: z.object({
        tables: z.array(z.string()).describe('Globs of the tables and views a statement may read.'),
        exclude: z.array(z.string()).describe('Tables and columns never visible (COLUMN or TABLE.COLUMN globs).'),
        maxRows: z.number(),
        maxResultBytes: z.number(),
        statementTimeoutMs: z.number(),
      }),
    }),
  ),
});

export const listDatabases = defineTool({
  name: 'list_databases',
  title: 'List databases',
  description:
    'List the databases you may query, read-only. Each comes with its policy: `tables` globs (readable tables and ' +
    'views), `exclude` globs (tables and columns never visible, as COLUMN or TABLE.COLUMN), and the caps on rows, ' +
    'result size and statement time. Use describe_database for the visible tables and columns.',
  input: z.object({}),
  output: listOutput,
  annotations: READ_ONLY,
  requires: 'read',
  async run(_args, ctx) {
    return {
      databases: ctx.databases.list(ctx.caller.principal).map((database) => ({
        ...database,
        policy: { ...database.policy, tables: [...database.policy.tables], exclude: [...database.policy.exclude] },
      })),
    };
  },
});

const describeOutput = z.object({
  database: z.string(),
  tables: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['table', 'view']),
      columns: z.array(z.object({ name: z.string(), type: z.string() })),
    }),
  ),
});

export const describeDatabase = defineTool({
  name: 'describe_database',
  title: 'Describe a database',
  description:
    'The visible tables and views of a database, with their visible columns and declared types. Excluded tables and ' +
    'columns are not listed, and a statement that reads one is refused.',
  input: z.object({ database: databaseName }),
  output: describeOutput,
  annotations: READ_ONLY,
  requires: 'read',
  render: (value) => [
    {
      type: 'text',
      text:
        value.tables.length === 0
          ? `${value.database}: no visible tables`
          : value.tables
              .map(
                (table) =>
                  `${table.kind === 'view' ? 'view ' : ''}${table.name}(${table.columns
                    .map((column) => (column.type ? `${column.name} ${column.type}` : column.name))
                    .join(', ')})`,
              )
              .join('\n'),
    },
  ],
  async run(args, ctx) {
    const tables = await ctx.databases.describe(ctx.caller, args.database);
    return {
      database: args.database,
      tables: tables.map((table) => ({
        name: table.name,
        kind: table.kind,
        columns: table.columns.map((column) => ({ name: column.name, type: column.type })),
      })),
    };
  },
});

const cell = z.union([z.string(), z.number(), z.null(), z.object({ base64: z.string() })]);

const queryOutput = z.object({
  database: z.string(),
  columns: z.array(z.string()),
  rows: z.array(z.array(cell)),
  rowCount: z.number(),
  truncated: z
    .enum(['rows', 'bytes'])
    .nullable()
    .describe('Why the rows stop early: the row cap or the result-size cap of the database; null when all are here.'),
  tables: z.array(z.string()).describe('The tables the statement read, as the database planned it (views expanded).'),
});

type QueryValue = z.output<typeof queryOutput>;

export const query = defineTool({
  name: 'query',
  title: 'Query a database',
  description:
    'Run one read-only SQL statement (a SELECT, WITH or VALUES statement) on a database. Parameters are bound to ' +
    '`?` placeholders (never write values into the SQL). The database plans the statement first: one that would ' +
    'write, read a table or column that is not visible, or call a function that is not allowed is refused before ' +
    'it runs. Rows are capped by count and size (the answer says when it is truncated); a statement that runs past ' +
    'its time limit is stopped. Every statement is audited.',
  input: z.object({
    database: databaseName,
    sql: z.string().min(1).max(100_000).describe('One SQL statement; `?` marks each parameter.'),
    params: z
      .array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
      .max(1000)
      .default([])
      .describe('Values for the `?` placeholders, in order.'),
  }),
  output: queryOutput,
  annotations: READ_ONLY,
  requires: 'read',
  render: renderRows,
  async run(args, ctx) {
    const answer = await ctx.databases.query(ctx.caller, args.database, args.sql, args.params);
    return {
      database: answer.database,
      columns: [...answer.columns],
      rows: answer.rows.map((row) => [...row]),
      rowCount: answer.rows.length,
      truncated: answer.truncated,
      tables: [...answer.tables],
    };
  },
});

/** A compact text table: a header, one line per row, and a last line saying what was cut. */
function renderRows(value: QueryValue): ContentBlock[] {
  const shown = (cell: QueryValue['rows'][number][number]) =>
    cell === null
      ? 'NULL'
      : typeof cell === 'object'
        ? `<blob ${Math.floor((cell.base64.length * 3) / 4)} bytes>`
        : String(cell).replaceAll('\n', '\\n');
  const lines = [value.columns.join(' | '), ...value.rows.map((row) => row.map(shown).join(' | '))];
  const count = `${value.rowCount} row${value.rowCount === 1 ? '' : 's'}`;
  lines.push(
    value.truncated === null
      ? `(${count})`
      : `(${count}; truncated at the ${value.truncated === 'rows' ? 'row cap' : 'result-size cap'}: narrow the query or add LIMIT/OFFSET)`,
  );
  return [{ type: 'text', text: lines.join('\n') }];
}
