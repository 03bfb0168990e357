import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { McpdError } from '../errors.js';
import { analyseSqlite, type ExplainRow, type SqliteSchema } from './sqlitePlan.js';
import { SQLITE_WORKER_SOURCE } from './sqliteWorker.js';
import type {
  DatabaseEngine,
  Execution,
  Judge,
  Parameter,
  Plan,
  QueryRows,
  StatementLimits,
  TableInfo,
} from './types.js';

/** A worker idle this long is stopped, with its copy of the database: an idle server holds neither. */
const IDLE_WORKER_MS = 30_000;

export interface SqliteSettings {
  /** The database file (canonical, absolute). */
  readonly path: string;
  readonly maxFileBytes: number;
  /** The worker's WebAssembly heap: the database, and whatever one statement builds. */
  readonly heapBytes: number;
  /** How long an idle worker (and its copy of the file) is kept; the next statement starts another. */
  readonly idleMs?: number;
}

interface Reply {
  readonly id: number;
  readonly error?: string;
  readonly code?: string;
  readonly [key: string]: unknown;
}

/** Where sql.js is: the worker loads it from this file (the bundle does not carry it). */
const SQL_JS = createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.js');

/**
 * One SQLite database, read in a worker thread of its own: one statement at a time, each stopped
 * (the thread terminated, a fresh one started for the next) when it outlives its timeout or its
 * caller gives up. The schema is cached per version of the file.
 */
export class SqliteDatabase implements DatabaseEngine {
  private worker: Worker | undefined;
  private nextId = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private schemaCache: { generation: string; schema: SqliteSchema } | undefined;
  private closed = false;
  private idle: NodeJS.Timeout | undefined;
  /** Messages asked and not yet answered: the worker is never retired under one. */
  private pending = 0;

  constructor(private readonly settings: SqliteSettings) {}

  /** The tables and views, with their columns (what the policy then filters). */
  async describe(timeoutMs: number, signal?: AbortSignal): Promise<TableInfo[]> {
    const schema = await this.schema(timeoutMs, signal);
    return [
      ...schema.tables
        .filter((table) => !table.virtual)
        .map((table) => ({
          name: table.name,
          kind: 'table' as const,
          columns: table.columns
            .filter((column) => column.hidden !== 1)
            .map((column) => ({ name: column.name, type: column.type })),
        })),
      ...schema.views.map((view) => ({ name: view.name, kind: 'view' as const, columns: view.columns })),
    ];
  }

  /** What one statement would touch, from SQLite's own compilation of it; refused when not a plain read. */
  async plan(sql: string, timeoutMs: number, signal?: AbortSignal): Promise<Plan> {
    const reply = await this.ask({ kind: 'plan', sql }, timeoutMs, signal);
    const statements = reply.statements as number;
    if (reply.error !== undefined) {
      if (statements > 1) return { ok: false, fingerprint: null, ...MANY };
      return { ok: false, fingerprint: null, rule: 'sql:invalid', reason: reply.error };
    }
    if (statements === 0) return { ok: false, fingerprint: null, rule: 'sql:empty', reason: 'no statement to run' };
    if (statements > 1) return { ok: false, fingerprint: null, ...MANY };
    const fingerprint = reply.normalized as string;
    const generation = reply.generation as string;
    const schema = await this.schemaOf(generation, timeoutMs, signal);
    const verdict = analyseSqlite(fingerprint, reply.explain as ExplainRow[], schema);
    if ('rule' in verdict) return { ok: false, fingerprint, ...verdict };
    return { ok: true, fingerprint, touched: verdict, generation };
  }

  async execute(
    sql: string,
    params: readonly Parameter[],
    limits: StatementLimits,
    judge: Judge,
    signal?: AbortSignal,
  ): Promise<Execution> {
    const plan = await this.plan(sql, limits.timeoutMs, signal);
    if (!plan.ok) return { kind: 'refused', fingerprint: plan.fingerprint, rule: plan.rule, reason: plan.reason };
    const tables = [...plan.touched.tables].sort();
    const schema = await this.schemaOf(plan.generation, limits.timeoutMs, signal);
    const columnsOf = (table: string) =>
      schema.tables
        .find((info) => info.name === table)
        ?.columns.filter((column) => column.hidden !== 1)
        .map((column) => column.name);
    if (!judge(plan.touched, columnsOf).allow) return { kind: 'denied', fingerprint: plan.fingerprint, tables };
    const caps = { generation: plan.generation, maxRows: limits.maxRows, maxBytes: limits.maxBytes };
    const rows = await this.run(sql, params, caps, limits.timeoutMs, signal);
    // The file changed between the plan and the run: the plan no longer describes what would run.
    if (rows === 'stale')
      throw new McpdError('CONFLICT', 'the database changed while the statement was planned; retry');
    return { kind: 'ran', fingerprint: plan.fingerprint, tables, rows };
  }

  /** Runs a planned statement; its rows stop at `maxRows` or `maxBytes`. */
  async run(
    sql: string,
    params: readonly Parameter[],
    caps: { readonly generation: string; readonly maxRows: number; readonly maxBytes: number },
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<QueryRows | 'stale'> {
    const reply = await this.ask(
      {
        kind: 'run',
        sql,
        params: params.map((value) => (typeof value === 'boolean' ? Number(value) : value)),
        generation: caps.generation,
        maxRows: caps.maxRows,
        maxBytes: caps.maxBytes,
      },
      timeoutMs,
      signal,
    );
    if (reply.stale) return 'stale';
    if (reply.error !== undefined) throw queryFailed(reply.error);
    return reply as unknown as QueryRows;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idle);
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private async schema(timeoutMs: number, signal?: AbortSignal): Promise<SqliteSchema> {
    const reply = await this.ask({ kind: 'schema' }, timeoutMs, signal);
    if (reply.error !== undefined) throw queryFailed(reply.error, reply.code);
    this.schemaCache = { generation: reply.generation as string, schema: reply.schema as SqliteSchema };
    return this.schemaCache.schema;
  }

  private async schemaOf(generation: string, timeoutMs: number, signal?: AbortSignal): Promise<SqliteSchema> {
    if (this.schemaCache?.generation === generation) return this.schemaCache.schema;
    return this.schema(timeoutMs, signal);
  }

  /** One message at a time: the worker holds one copy of the database and runs one statement. */
  private ask(message: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal): Promise<Reply> {
    clearTimeout(this.idle);
    this.pending += 1;
    const turn = this.queue.then(() => this.exchange(message, timeoutMs, signal));
    this.queue = turn.catch(() => {});
    void this.queue.then(() => {
      this.pending -= 1;
      if (this.pending === 0) this.retireLater();
    });
    return turn;
  }

  /** Whether a worker (and its copy of the database) is held now. */
  get holdsWorker(): boolean {
    return this.worker !== undefined;
  }

  private retireLater(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      const worker = this.worker;
      this.worker = undefined;
      void worker?.terminate();
    }, this.settings.idleMs ?? IDLE_WORKER_MS);
    this.idle.unref();
  }

  private exchange(message: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal): Promise<Reply> {
    if (this.closed) return Promise.reject(new McpdError('UNAVAILABLE', 'the database is closed (shutting down)'));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new McpdError('CANCELLED', 'cancelled'));
    const worker = this.running();
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const stop = (error: unknown) => {
        cleanup();
        // A statement cannot be interrupted inside SQLite: the thread goes, the next call starts one.
        this.worker = undefined;
        void worker.terminate();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          stop(
            new McpdError(
              'TIMEOUT',
              `the statement ran longer than its ${timeoutMs} ms statementTimeoutMs and was stopped`,
            ),
          ),
        timeoutMs,
      );
      const onAbort = () => stop(signal?.reason ?? new McpdError('CANCELLED', 'cancelled'));
      const onMessage = (reply: Reply) => {
        if (reply.id !== id) return;
        cleanup();
        if (reply.code === 'TOO_LARGE') reject(new McpdError('TOO_LARGE', reply.error ?? 'the database is too large'));
        else resolve(reply);
      };
      const onError = (error: Error) => {
        cleanup();
        this.worker = undefined;
        reject(
          /memory/i.test(error.message)
            ? queryFailed('out of memory: the statement built more than the database heap allows')
            : error,
        );
      };
      const onExit = () => onError(new Error('the database worker stopped'));
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ ...message, id });
    });
  }

  private running(): Worker {
    if (!this.worker) {
      this.worker = new Worker(SQLITE_WORKER_SOURCE, {
        eval: true,
        workerData: {
          sqlJsPath: SQL_JS,
          path: this.settings.path,
          maxFileBytes: this.settings.maxFileBytes,
          heapBytes: this.settings.heapBytes,
        },
      });
      this.worker.unref();
    }
    return this.worker;
  }
}

const MANY = { rule: 'sql:many-statements', reason: 'exactly one statement may run at a time' };

function queryFailed(message: string, code?: string): McpdError {
  if (code === 'TOO_LARGE') return new McpdError('TOO_LARGE', message);
  return new McpdError('QUERY_FAILED', `the database refused the statement: ${message}`);
}
