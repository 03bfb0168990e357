import { createRequire } from 'node:module';
import type { Pool, PoolClient, QueryConfig } from 'pg';
import type CursorType from 'pg-cursor';
import type { TlsMaterial } from '../config/schema.js';
import { McpdError } from '../errors.js';
import { fingerprint } from './fingerprint.js';
import { analysePostgres, relationsOf } from './postgresPlan.js';
import type {
  Cell,
  DatabaseEngine,
  Execution,
  Judge,
  Parameter,
  QueryRows,
  StatementLimits,
  TableInfo,
} from './types.js';

export interface PostgresSettings {
  readonly url: string;
  readonly password: string | null;
  /** The schema whose relations are named bare; the others are `schema.relation`. */
  readonly schema: string;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  /** TLS that verifies the server, when configured: it replaces whatever the URL's sslmode asks. */
  readonly tls: TlsMaterial | null;
}

type ParseUrl = (url: string) => Record<string, unknown>;

/** Loaded when the first PostgreSQL database is used, never by a process that has none. */
function driver(): { Pool: typeof Pool; Cursor: typeof CursorType; parse: ParseUrl } {
  const load = createRequire(import.meta.url);
  return {
    Pool: (load('pg') as { Pool: typeof Pool }).Pool,
    Cursor: load('pg-cursor') as typeof CursorType,
    parse: (load('pg-connection-string') as { parse: ParseUrl }).parse,
  };
}

/** Rows a cursor fetches per round trip. */
const FETCH_ROWS = 100;

/**
 * The memberships and attributes that would let a role read or write outside the tables the
 * policy judges (files on the server, programs, every table): a role holding one is refused.
 */
const ROLE_CHECK = `
  SELECT r.rolsuper, r.rolbypassrls,
         pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') AS read_files,
         pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') AS write_files,
         pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') AS programs,
         pg_has_role(current_user, 'pg_write_all_data', 'MEMBER') AS write_all
  FROM pg_roles r WHERE r.rolname = current_user`;

/**
 * One PostgreSQL database, reached through a small pool. Every statement runs in a transaction of
 * its own that is READ ONLY, with `statement_timeout` set, and is rolled back: the plan
 * (EXPLAIN VERBOSE, same snapshot, same role) is judged first, and the statement runs only if the
 * judge allows it, its rows fetched through a cursor until a cap is reached. The role must be one
 * that can only read (docs/databases.md shows how to create it): a superuser, or a member of the
 * server-file, program or write-all roles, is refused before any statement.
 */
export class PostgresDatabase implements DatabaseEngine {
  private pool: Pool | undefined;
  private roleChecked: Promise<void> | undefined;
  private readonly Cursor: typeof CursorType;

  constructor(private readonly settings: PostgresSettings) {
    const { Pool: PgPool, Cursor, parse } = driver();
    this.Cursor = Cursor;
    // The URL parsed here, not by the pool: a connectionString's absent password would override the one given.
    const fromUrl = Object.fromEntries(Object.entries(parse(settings.url)).filter(([, value]) => value != null));
    this.pool = new PgPool({
      ...fromUrl,
      ...(settings.password === null ? {} : { password: settings.password }),
      ...(settings.tls === null ? {} : { ssl: { ...settings.tls, rejectUnauthorized: true } }),
      max: settings.poolSize,
      connectionTimeoutMillis: settings.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: 'mcpd',
    });
    // An idle connection the server closed: the pool drops it; the next statement opens another.
    this.pool.on('error', () => {});
  }

  async describe(timeoutMs: number, signal?: AbortSignal): Promise<TableInfo[]> {
    return this.transaction(timeoutMs, signal, async (client) => {
      const { rows } = await client.query<{
        relation: string;
        kind: string;
        column: string | null;
        type: string | null;
      }>(
        `SELECT c.relname AS relation, c.relkind::text AS kind, a.attname AS column,
                format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND has_table_privilege(c.oid, 'SELECT')
         ORDER BY c.relname, a.attnum`,
        [this.settings.schema],
      );
      const tables = new Map<string, TableInfo & { columns: { name: string; type: string }[] }>();
      for (const row of rows) {
        let table = tables.get(row.relation);
        if (!table) {
          table = { name: row.relation, kind: row.kind === 'v' || row.kind === 'm' ? 'view' : 'table', columns: [] };
          tables.set(row.relation, table);
        }
        if (row.column !== null) table.columns.push({ name: row.column, type: row.type ?? '' });
      }
      return [...tables.values()];
    });
  }

  async execute(
    sql: string,
    params: readonly Parameter[],
    limits: StatementLimits,
    judge: Judge,
    signal?: AbortSignal,
  ): Promise<Execution> {
    const shown = fingerprint(sql);
    return this.transaction(limits.timeoutMs, signal, async (client) => {
      let plan: unknown;
      try {
        // The extended protocol: one statement only, its parameters bound, never spliced.
        const explained = await client.query({
          text: `EXPLAIN (VERBOSE, FORMAT JSON) ${sql}`,
          values: [...params],
          queryMode: 'extended',
        } as QueryConfig);
        plan = (explained.rows[0] as { 'QUERY PLAN': unknown } | undefined)?.['QUERY PLAN'];
      } catch (error) {
        return { kind: 'refused', fingerprint: shown, rule: 'sql:invalid', reason: reasonOf(error) };
      }
      const described = await this.columnsOf(client, relationsOf(plan, this.settings.schema));
      const verdict = analysePostgres(plan, this.settings.schema, described);
      if ('rule' in verdict) return { kind: 'refused', fingerprint: shown, ...verdict };
      const tables = [...verdict.tables].sort();
      if (!judge(verdict, (table) => described.get(table)).allow) {
        return { kind: 'denied', fingerprint: shown, tables };
      }
      return { kind: 'ran', fingerprint: shown, tables, rows: await this.fetch(client, sql, params, limits) };
    });
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  /** The columns of the relations a statement touches (for a whole-row read, judged column by column). */
  private async columnsOf(client: PoolClient, tables: ReadonlySet<string>): Promise<Map<string, string[]>> {
    const names = [...tables].map((table) => (table.includes('.') ? table : `${this.settings.schema}.${table}`));
    const { rows } = await client.query<{ relation: string; schema: string; column: string }>(
      `SELECT c.relname AS relation, n.nspname AS schema, a.attname AS column
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       WHERE (n.nspname || '.' || c.relname) = ANY($1::text[])
       ORDER BY c.oid, a.attnum`,
      [names],
    );
    const columns = new Map<string, string[]>();
    for (const row of rows) {
      const key = row.schema === this.settings.schema ? row.relation : `${row.schema}.${row.relation}`;
      columns.set(key, [...(columns.get(key) ?? []), row.column]);
    }
    return columns;
  }

  private async fetch(
    client: PoolClient,
    sql: string,
    params: readonly Parameter[],
    limits: StatementLimits,
  ): Promise<QueryRows> {
    const cursor = client.query(new this.Cursor(sql, [...params], { rowMode: 'array' }));
    let columns: string[] = [];
    const read = () =>
      new Promise<unknown[][]>((resolve, reject) =>
        cursor.read(FETCH_ROWS, (error, batch, result) => {
          if (error) reject(error);
          else {
            // The last read of a finished cursor carries no result: the columns are those of the first.
            if (result?.fields) columns = result.fields.map((field) => field.name);
            resolve(batch as unknown[][]);
          }
        }),
      );
    const rows: Cell[][] = [];
    let bytes = 2;
    let truncated: QueryRows['truncated'] = null;
    try {
      outer: while (true) {
        const batch = await read();
        if (batch.length === 0) break;
        for (const raw of batch) {
          if (rows.length === limits.maxRows) {
            truncated = 'rows';
            break outer;
          }
          const row = raw.map(cell);
          const size = JSON.stringify(row).length + 1;
          if (bytes + size > limits.maxBytes) {
            truncated = 'bytes';
            break outer;
          }
          bytes += size;
          rows.push(row);
        }
      }
      return { columns, rows, truncated, bytes };
    } catch (error) {
      throw failed(error, limits.timeoutMs);
    } finally {
      await cursor.close().catch(() => {});
    }
  }

  /** A READ ONLY transaction with a statement timeout, always rolled back; the connection goes back to the pool. */
  private async transaction<T>(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    work: (client: PoolClient) => Promise<T>,
  ): Promise<T> {
    const pool = this.pool;
    if (!pool) throw new McpdError('UNAVAILABLE', 'the database is closed (shutting down)');
    signal?.throwIfAborted();
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw new McpdError('UNAVAILABLE', `the database cannot be reached: ${reasonOf(error)}`);
    }
    // A cancelled call: the connection is closed, which ends the statement on the server.
    let broken = false;
    // A connection the server ends mid-statement reports an error event: it fails this statement, never the process.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    const onAbort = () => {
      broken = true;
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.checkRole(client);
      await client.query('BEGIN TRANSACTION READ ONLY');
      await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
      await client.query(
        `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(1000, Math.floor(timeoutMs) * 2)}`,
      );
      return await work(client);
    } catch (error) {
      broken ||= !(error instanceof McpdError);
      if (signal?.aborted) throw signal.reason ?? new McpdError('CANCELLED', 'cancelled');
      throw error instanceof McpdError ? error : failed(error, timeoutMs);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      client.off('error', onError);
      client.release(broken);
    }
  }

  /** Once per process: the role must be one that can only read what it is granted. */
  private checkRole(client: PoolClient): Promise<void> {
    this.roleChecked ??= (async () => {
      const { rows } = await client.query<Record<string, boolean>>(ROLE_CHECK);
      const role = rows[0];
      const powers = role
        ? Object.entries({
            superuser: role.rolsuper,
            'bypasses row security': role.rolbypassrls,
            pg_read_server_files: role.read_files,
            pg_write_server_files: role.write_files,
            pg_execute_server_program: role.programs,
            pg_write_all_data: role.write_all,
          })
            .filter(([, held]) => held)
            .map(([power]) => power)
        : ['unknown role'];
      if (powers.length > 0) {
        throw new McpdError(
          'QUERY_REFUSED',
          `the database role may do more than read (${powers.join(', ')}): connect as a read-only role (see docs/databases.md)`,
        );
      }
    })();
    this.roleChecked.catch(() => {
      this.roleChecked = undefined;
    });
    return this.roleChecked;
  }
}

function cell(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return { base64: value.toString('base64') };
  return JSON.stringify(value);
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A server error while running: the timeout named as such, the rest as the database's refusal. */
function failed(error: unknown, timeoutMs: number): McpdError {
  if ((error as { code?: string }).code === '57014') {
    return new McpdError(
      'TIMEOUT',
      `the statement ran longer than its ${timeoutMs} ms statementTimeoutMs and was stopped`,
    );
  }
  return new McpdError('QUERY_FAILED', `the database refused the statement: ${reasonOf(error)}`);
}
