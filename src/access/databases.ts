import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { DatabaseAccess, Outcome } from '../audit/record.js';
import type { DatabaseConfig } from '../config/schema.js';
import { PostgresDatabase } from '../db/postgres.js';
import { SqliteDatabase } from '../db/sqlite.js';
import type { DatabaseEngine, Judge, Parameter, QueryRows, TableInfo } from '../db/types.js';
import { isAbortError, isMcpdError, McpdError } from '../errors.js';
import { DatabasePolicy, judgeStatement, type StatementDecision } from '../policy/databases.js';
import type { GrantTable } from '../policy/grants.js';
import type { Principal } from '../policy/types.js';
import type { AccessGate, Caller } from './gate.js';

/**
 * The only way a tool reaches a database: the grants and the database's policy decide, its own
 * planner says what a statement touches before anything runs, and every statement (and every
 * describe) leaves exactly one audit record, allowed or denied. Parameters are bound, never
 * written into the statement, and never recorded.
 */

/** How much of a fingerprint an audit record keeps. */
const MAX_FINGERPRINT_CHARS = 1024;

/** What list_databases shows of one database. */
export interface DatabaseSummary {
  readonly name: string;
  readonly description: string;
  readonly driver: string;
  readonly policy: {
    readonly tables: readonly string[];
    readonly exclude: readonly string[];
    readonly maxRows: number;
    readonly maxResultBytes: number;
    readonly statementTimeoutMs: number;
  };
}

export interface QueryAnswer extends QueryRows {
  readonly database: string;
  readonly tables: readonly string[];
}

/** The engines of the configured databases, kept across reloads (a worker, or a connection pool, each). */
export class DatabaseEngines {
  private readonly engines = new Map<string, DatabaseEngine>();

  engineFor(database: DatabaseConfig): DatabaseEngine {
    const key = engineKey(database);
    let engine = this.engines.get(key);
    if (!engine) {
      engine =
        database.driver === 'sqlite'
          ? new SqliteDatabase({
              path: database.path,
              maxFileBytes: database.maxFileBytes,
              heapBytes: database.maxMemoryBytes,
            })
          : new PostgresDatabase({
              url: database.url,
              password: database.password,
              schema: database.schema,
              poolSize: database.poolSize,
              connectTimeoutMs: database.connectTimeoutMs,
              tls: database.tls,
            });
      this.engines.set(key, engine);
    }
    return engine;
  }

  /** Closes the engines of databases the configuration no longer names (or names differently). */
  async retain(databases: readonly DatabaseConfig[]): Promise<void> {
    const keep = new Set(databases.map(engineKey));
    for (const [key, engine] of this.engines) {
      if (keep.has(key)) continue;
      this.engines.delete(key);
      await engine.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.engines.values()].map((engine) => engine.close()));
    this.engines.clear();
  }
}

/** What an engine is made from: a database whose settings change gets a new one. */
function engineKey(database: DatabaseConfig): string {
  return database.driver === 'sqlite'
    ? JSON.stringify(['sqlite', database.path, database.maxFileBytes, database.maxMemoryBytes])
    : JSON.stringify([
        'postgres',
        database.url,
        database.password,
        database.schema,
        database.poolSize,
        database.connectTimeoutMs,
        database.tls,
      ]);
}

interface Configured {
  readonly config: DatabaseConfig;
  readonly policy: DatabasePolicy;
  readonly engine: DatabaseEngine;
}

export class AuditedDatabases {
  private readonly byName: ReadonlyMap<string, Configured>;

  constructor(
    databases: readonly DatabaseConfig[],
    private readonly grants: GrantTable,
    private readonly gate: AccessGate,
    engines: DatabaseEngines,
  ) {
    this.byName = new Map(
      databases.map((config) => [
        config.name,
        { config, policy: new DatabasePolicy(config), engine: engines.engineFor(config) },
      ]),
    );
  }

  /** The databases `principal` may query, with their effective policy. */
  list(principal: Principal): DatabaseSummary[] {
    return [...this.byName.values()]
      .filter(({ config }) => this.grants.permitsDatabase(principal, config.name))
      .map(({ config }) => ({
        name: config.name,
        description: config.description,
        driver: config.driver,
        policy: {
          tables: config.tables,
          exclude: config.exclude,
          maxRows: config.maxRows,
          maxResultBytes: config.maxResultBytes,
          statementTimeoutMs: config.statementTimeoutMs,
        },
      }));
  }

  /** The visible tables and views of a database, with their visible columns; excluded ones are not there. */
  describe(caller: Caller, name: string): Promise<TableInfo[]> {
    return this.gate.guarded(async () => {
      const started = performance.now();
      const database = this.reachable(caller, name, 'describe', started);
      const record = (outcome: Outcome, tables: string[], error?: string) =>
        this.gate.recordDatabase(caller, {
          op: 'describe',
          requested: name,
          decision: 'allow',
          rule: 'grant:read',
          reason: 'lists the visible tables and columns',
          outcome,
          bytes: null,
          started,
          ...(error ? { error } : {}),
          database: { name, fingerprint: null, sha256: '', tables, rows: null },
        });
      try {
        const tables = await database.engine.describe(database.config.statementTimeoutMs, caller.signal);
        const visible = tables
          .filter((table) => database.policy.tableRule(table.name) === undefined)
          .map((table) => ({
            ...table,
            columns: table.columns.filter(
              (column) => database.policy.columnRule(table.name, column.name) === undefined,
            ),
          }));
        record(
          'ok',
          visible.map((table) => table.name),
        );
        return visible;
      } catch (error) {
        const failure = failureOf(error, caller);
        record(failure.outcome, [], failure.code);
        throw error;
      }
    });
  }

  /** One read-only statement, judged by the database's planner and the policy before it runs. */
  query(caller: Caller, name: string, sql: string, params: readonly Parameter[]): Promise<QueryAnswer> {
    return this.gate.guarded(async () => {
      const started = performance.now();
      const sha256 = createHash('sha256').update(sql).digest('hex');
      const database = this.reachable(caller, name, 'query', started, sha256);
      const { config, policy, engine } = database;
      const access = (fingerprint: string | null, tables: readonly string[], rows: number | null): DatabaseAccess => ({
        name,
        fingerprint: fingerprint === null ? null : bounded(fingerprint),
        sha256,
        tables,
        rows,
      });
      let fingerprint: string | null = null;
      let verdict: StatementDecision | undefined;
      try {
        const judge: Judge = (touched, columnsOf) => {
          verdict = judgeStatement(policy, touched, columnsOf);
          return verdict;
        };
        const limits = {
          maxRows: config.maxRows,
          maxBytes: config.maxResultBytes,
          timeoutMs: config.statementTimeoutMs,
        };
        const execution = await this.gate.traced(
          `mcpd.db ${name}`,
          { 'db.system.name': config.driver === 'postgres' ? 'postgresql' : 'sqlite', 'db.namespace': name },
          async (annotate) => {
            const done = await engine.execute(sql, params, limits, judge, caller.signal);
            annotate({
              ...(done.fingerprint === null ? {} : { 'db.query.text': bounded(done.fingerprint) }),
              'mcpd.decision': done.kind === 'ran' ? 'allow' : 'deny',
              ...(done.kind === 'ran' ? { 'db.response.returned_rows': done.rows.rows.length } : {}),
            });
            return done;
          },
        );
        fingerprint = execution.fingerprint;
        if (execution.kind === 'refused') {
          this.deny(caller, started, access(fingerprint, [], null), execution.rule, execution.reason);
          throw new McpdError('QUERY_REFUSED', execution.reason);
        }
        if (execution.kind === 'denied' || !verdict?.allow) {
          const denial = verdict as Extract<StatementDecision, { allow: false }>;
          this.deny(caller, started, access(fingerprint, execution.tables, null), denial.rule, denial.reason);
          throw new McpdError('QUERY_REFUSED', denial.shown);
        }
        const { rows, tables } = execution;
        this.gate.recordDatabase(caller, {
          op: 'query',
          requested: execution.fingerprint,
          decision: 'allow',
          rule: verdict.rule,
          reason: verdict.reason,
          outcome: 'ok',
          bytes: rows.bytes,
          started,
          database: access(execution.fingerprint, tables, rows.rows.length),
        });
        return { ...rows, database: name, tables };
      } catch (error) {
        if (isMcpdError(error) && error.code === 'QUERY_REFUSED') throw error;
        const failure = failureOf(error, caller);
        this.gate.recordDatabase(caller, {
          op: 'query',
          requested: fingerprint ?? '',
          decision: verdict?.allow === false ? 'deny' : 'allow',
          rule: verdict?.rule ?? 'sql:planning',
          reason: verdict ? `${verdict.reason}; failed while running` : 'failed while the database planned it',
          outcome: failure.outcome,
          bytes: null,
          started,
          error: failure.code,
          database: access(fingerprint, [], null),
        });
        throw error;
      }
    });
  }

  /**
   * The `db://` resources of the databases the caller may query: one per visible table or view.
   * Each database's listing is a describe, audited as one.
   */
  async resources(caller: Caller): Promise<{ uri: string; database: string; table: string; kind: string }[]> {
    const found: { uri: string; database: string; table: string; kind: string }[] = [];
    for (const { config } of this.byName.values()) {
      if (!this.grants.permitsDatabase(caller.principal, config.name)) continue;
      for (const table of await this.describe(caller, config.name)) {
        found.push({
          uri: databaseUri(config.name, table.name),
          database: config.name,
          table: table.name,
          kind: table.kind,
        });
      }
    }
    return found;
  }

  /**
   * A `db://NAME/TABLE` resource: the table's visible columns and a sample of its rows, read by a
   * statement mcpd writes itself (the visible columns, a row limit) that goes through the same plan,
   * judgement and audit as any other. Undefined for a URI that names nothing visible.
   */
  async readTable(
    caller: Caller,
    uri: string,
  ): Promise<{ uri: string; database: string; table: TableInfo; sample: QueryAnswer } | undefined> {
    const named = parseDatabaseUri(uri);
    if (!named) return undefined;
    const database = this.byName.get(named.database);
    if (!database || !this.grants.permitsDatabase(caller.principal, named.database)) return undefined;
    const table = (await this.describe(caller, named.database)).find((info) => info.name === named.table);
    if (!table || table.columns.length === 0) return undefined;
    const columns = table.columns.map((column) => quoteIdentifier(column.name)).join(', ');
    const limit = Math.min(database.config.maxRows, RESOURCE_SAMPLE_ROWS);
    const sample = await this.query(
      caller,
      named.database,
      `SELECT ${columns} FROM ${quoteIdentifier(table.name)} LIMIT ${limit}`,
      [],
    );
    return { uri, database: named.database, table, sample };
  }

  /** The database by name, when the caller may reach it; an unknown and a hidden one are refused alike. */
  private reachable(caller: Caller, name: string, op: 'query' | 'describe', started: number, sha256 = '') {
    const database = this.byName.get(name);
    if (database && this.grants.permitsDatabase(caller.principal, name)) return database;
    this.gate.recordDatabase(caller, {
      op,
      requested: name,
      decision: 'deny',
      rule: database ? 'grant:none' : 'unknown-database',
      reason: database
        ? `principal "${caller.principal.id}" has no grant on this database`
        : 'no database has that name',
      outcome: 'denied',
      bytes: null,
      started,
      database: {
        name,
        fingerprint: null,
        sha256,
        tables: [],
        rows: null,
      },
    });
    throw new McpdError('INVALID_ARGUMENT', 'no database has that name');
  }

  private deny(caller: Caller, started: number, database: DatabaseAccess, rule: string, reason: string): void {
    this.gate.recordDatabase(caller, {
      op: 'query',
      requested: database.fingerprint ?? '',
      decision: 'deny',
      rule,
      reason,
      outcome: 'denied',
      bytes: null,
      started,
      database,
    });
  }
}

/** Rows a `db://` resource shows of its table. */
const RESOURCE_SAMPLE_ROWS = 20;

export const DATABASE_URI_SCHEME = 'db:';

/** `db://NAME/TABLE`, each part percent-encoded. */
export function databaseUri(database: string, table: string): string {
  return `db://${encodeURIComponent(database)}/${encodeURIComponent(table)}`;
}

function parseDatabaseUri(uri: string): { database: string; table: string } | undefined {
  const match = /^db:\/\/([^/]+)\/([^/]+)$/.exec(uri);
  if (!match) return undefined;
  try {
    return { database: decodeURIComponent(match[1] as string), table: decodeURIComponent(match[2] as string) };
  } catch {
    return undefined;
  }
}

/** An SQL identifier, quoted: the names come from the database's own schema, never from a client. */
function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function bounded(fingerprint: string): string {
  return fingerprint.length > MAX_FINGERPRINT_CHARS ? `${fingerprint.slice(0, MAX_FINGERPRINT_CHARS)}...` : fingerprint;
}

/** How a failed run is recorded: a cancellation, a deadline, or an error with its code. */
function failureOf(error: unknown, caller: Caller): { outcome: Outcome; code: string } {
  const stopped = caller.signal?.aborted === true || isAbortError(error);
  const reason = caller.signal?.aborted ? caller.signal.reason : undefined;
  const code = isMcpdError(reason) ? reason.code : isMcpdError(error) ? error.code : stopped ? 'CANCELLED' : 'INTERNAL';
  return { outcome: stopped && code !== 'TIMEOUT' ? 'cancelled' : 'error', code };
}
