import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import initSqlJs from 'sql.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { queryTool, runCorpus } from '../helpers/databases.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * A hostile SQL corpus against a real SQLite database behind the real server: every statement an
 * attacker would try to write, attach, reach a file, read an excluded table or column by any
 * route (SELECT *, views, joins, subqueries, CTEs, ordering, aggregates, indexes), exhaust time or
 * memory, or step outside the one-statement rule. What must hold, for the whole corpus: nothing
 * written (the file is byte-identical), no excluded value in any answer, nothing read outside the
 * database, and one audit record per attempt.
 */

/** Values only excluded columns and tables hold: none may appear in any answer. */
const SECRETS = ['SECRET-HASH', 'SECRET-TOKEN', 'SECRET-MAIL', 'SECRET-KEY'];

async function makeDatabase(file: string): Promise<void> {
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  db.run(`
    CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, password_hash TEXT, city TEXT);
    CREATE INDEX customers_hash_lower ON customers(lower(password_hash));
    CREATE INDEX customers_city ON customers(city, password_hash);
    CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, customer_id INTEGER, token TEXT);
    CREATE TABLE internal_notes (id INTEGER PRIMARY KEY, body TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT, signing_secret TEXT) WITHOUT ROWID;
    CREATE TABLE big (n INTEGER PRIMARY KEY, pad TEXT);
    CREATE TABLE keyed_last (label TEXT, api_secret TEXT, id INTEGER PRIMARY KEY) WITHOUT ROWID;
    CREATE VIEW customer_logins AS SELECT name, password_hash FROM customers;
    CREATE VIEW order_view AS SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id;
    CREATE VIEW token_view AS SELECT customer_id FROM api_tokens;
    CREATE TRIGGER never AFTER INSERT ON orders BEGIN DELETE FROM customers; END;
  `);
  for (let i = 1; i <= 5; i++) {
    db.run('INSERT INTO customers VALUES (?, ?, ?, ?, ?)', [
      i,
      `c${i}`,
      `SECRET-MAIL-${i}`,
      `SECRET-HASH-${i}`,
      'Oslo',
    ]);
    db.run('INSERT INTO api_tokens VALUES (?, ?, ?)', [i, i, `SECRET-TOKEN-${i}`]);
    db.run('INSERT INTO orders VALUES (?, ?, ?)', [i, i, i * 10]);
  }
  db.run("INSERT INTO settings VALUES ('theme', 'dark', 'SECRET-KEY-1')");
  db.run("INSERT INTO internal_notes VALUES (1, 'internal')");
  db.run("INSERT INTO keyed_last VALUES ('label-1', 'SECRET-KEY-2', 7)");
  db.run(
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5000) INSERT INTO big SELECT n, printf('%0100d', n) FROM s",
  );
  await writeFile(file, db.export());
  db.close();
}

/** Each must be refused (or fail) without effect; the comment says the route it tries. */
const REFUSED: readonly string[] = [
  // More than one statement.
  'SELECT 1; DELETE FROM customers',
  'SELECT 1;;SELECT 2',
  "SELECT 1; ATTACH '/etc/passwd' AS p",
  'SELECT 1 -- comment\n; DROP TABLE customers',
  '/* a */ SELECT 1; /* b */ SELECT 2',
  'SELECT name FROM customers; SELECT password_hash FROM customers',
  // Writes of every kind.
  'INSERT INTO orders VALUES (99, 1, 1)',
  'INSERT INTO orders SELECT 100, 1, 1 RETURNING *',
  'UPDATE customers SET name = name',
  "UPDATE customers SET city = 'x' RETURNING password_hash",
  'DELETE FROM orders',
  'DELETE FROM customers RETURNING password_hash',
  'REPLACE INTO orders VALUES (1, 1, 1)',
  'INSERT INTO orders VALUES (1, 1, 1) ON CONFLICT(id) DO UPDATE SET total = 0',
  'DROP TABLE orders',
  'DROP VIEW order_view',
  'DROP INDEX customers_city',
  'DROP TRIGGER never',
  'CREATE TABLE t (x)',
  'CREATE TEMP TABLE t (x)',
  'CREATE TEMP VIEW v AS SELECT password_hash FROM customers',
  'CREATE TEMP TRIGGER t AFTER INSERT ON orders BEGIN SELECT 1; END',
  'CREATE INDEX i ON orders(total)',
  'CREATE VIEW v2 AS SELECT 1',
  'ALTER TABLE orders ADD COLUMN x',
  'ALTER TABLE orders RENAME TO o2',
  'REINDEX',
  'ANALYZE',
  'VACUUM',
  "VACUUM INTO '/tmp/mcpd-hostile-copy.db'",
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT s',
  'RELEASE s',
  // Other databases and files.
  "ATTACH '/etc/passwd' AS p",
  "ATTACH ':memory:' AS m",
  "ATTACH 'file:/etc/passwd?mode=ro' AS p",
  'DETACH main',
  'SELECT * FROM temp.sqlite_master',
  // Pragmas, with and without side effects.
  'PRAGMA writable_schema = 1',
  'PRAGMA query_only = 0',
  'PRAGMA journal_mode = WAL',
  'PRAGMA table_info(customers)',
  'PRAGMA database_list',
  'PRAGMA compile_options',
  'PRAGMA integrity_check',
  "SELECT * FROM pragma_table_info('customers')",
  'SELECT * FROM pragma_database_list',
  "SELECT name FROM pragma_index_list('customers')",
  // Extensions and functions that reach outside the statement.
  "SELECT load_extension('/tmp/evil.so')",
  "SELECT readfile('/etc/passwd')",
  "SELECT writefile('/tmp/x', 'y')",
  "SELECT fts3_tokenizer('simple')",
  "SELECT sqlite_compileoption_used('THREADSAFE')",
  'SELECT zeroblob(1000000000)',
  'SELECT randomblob(1000000000)',
  "SELECT printf('%.*c', 1000000000, 'x')",
  'SELECT changes()',
  'SELECT last_insert_rowid()',
  // Virtual tables and table-valued functions.
  "SELECT * FROM json_each('[1,2]')",
  'SELECT * FROM json_tree(\'{"a":1}\')',
  'SELECT * FROM dbstat',
  'SELECT * FROM sqlite_dbpage',
  'SELECT * FROM generate_series(1, 10)',
  // The schema itself (it names excluded columns).
  'SELECT * FROM sqlite_schema',
  'SELECT sql FROM sqlite_master',
  'SELECT * FROM sqlite_temp_master',
  "SELECT name FROM sqlite_master WHERE type = 'table'",
  // Excluded columns, by every route.
  'SELECT * FROM customers',
  'SELECT c.* FROM customers c',
  'SELECT password_hash FROM customers',
  'SELECT "PASSWORD_HASH" FROM customers',
  'SELECT [password_hash] FROM "customers"',
  'SELECT `password_hash` FROM customers',
  'SELECT email FROM customers',
  'SELECT customers.email FROM customers',
  'SELECT rowid, * FROM customers',
  'SELECT (SELECT password_hash FROM customers LIMIT 1)',
  "SELECT name FROM customers WHERE password_hash LIKE 'SECRET%'",
  'SELECT name FROM customers WHERE password_hash = ?',
  'SELECT name FROM customers ORDER BY password_hash',
  'SELECT count(*) FROM customers GROUP BY password_hash',
  'SELECT length(password_hash) FROM customers',
  'SELECT name FROM customers UNION SELECT password_hash FROM customers',
  'SELECT name FROM customers UNION ALL SELECT email FROM customers',
  'WITH x AS (SELECT password_hash AS p FROM customers) SELECT p FROM x',
  'SELECT p FROM (SELECT password_hash AS p FROM customers)',
  'SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE password_hash > ?)',
  "SELECT CASE WHEN password_hash > 'S' THEN 1 ELSE 0 END FROM customers",
  "SELECT json_object('p', password_hash) FROM customers",
  'SELECT group_concat(password_hash) FROM customers',
  'SELECT max(email) FROM customers',
  "SELECT name FROM customers WHERE lower(password_hash) = 'secret-hash-1'",
  "SELECT name FROM customers WHERE city = 'Oslo' AND password_hash > ''",
  'SELECT * FROM customer_logins',
  'SELECT o.total, c.password_hash FROM orders o JOIN customers c ON c.id = o.customer_id',
  'SELECT o.total FROM orders o JOIN customers c ON c.password_hash = c.password_hash',
  'SELECT * FROM settings',
  'SELECT signing_secret FROM settings',
  // A WITHOUT ROWID table stores its key first: the secret is the third column stored, not the second.
  'SELECT api_secret FROM keyed_last',
  'SELECT label FROM keyed_last WHERE api_secret > ?',
  // Excluded and unlisted tables.
  'SELECT * FROM api_tokens',
  'SELECT count(*) FROM api_tokens',
  'SELECT customer_id FROM api_tokens',
  'SELECT * FROM token_view',
  'SELECT o.id FROM orders o JOIN api_tokens t ON t.customer_id = o.customer_id',
  'SELECT 1 WHERE EXISTS (SELECT 1 FROM api_tokens)',
  'SELECT * FROM internal_notes',
  'SELECT count(*) FROM internal_notes',
  // The user's own plan requests, and statements the database cannot parse.
  'EXPLAIN SELECT password_hash FROM customers',
  'EXPLAIN QUERY PLAN SELECT * FROM customers',
  'SELEC name FROM customers',
  '',
  '   ',
  '-- only a comment',
];

/** Each runs, since it reads nothing hidden: a view's visible column, a count, the visible columns. */
const ALLOWED: readonly string[] = [
  'SELECT name FROM customer_logins',
  'SELECT count(*) FROM customers',
  'SELECT id, name, city FROM customers',
  "SELECT name FROM customers WHERE city = 'Oslo'",
  'SELECT * FROM order_view',
  'SELECT key, value FROM orders, settings LIMIT 1',
  'SELECT value FROM settings',
  'SELECT label, id FROM keyed_last',
];

/** Each may run, but only within its bounds: time, memory and rows. */
const BOUNDED: readonly { sql: string; outcome: 'TIMEOUT' | 'QUERY_FAILED' | 'truncated' }[] = [
  { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c', outcome: 'TIMEOUT' },
  { sql: 'SELECT count(*) FROM big a, big b, big c', outcome: 'TIMEOUT' },
  {
    sql: "WITH RECURSIVE r(s) AS (SELECT 'xxxxxxxx' UNION ALL SELECT s || s FROM r) SELECT length(s) FROM r WHERE length(s) > 2000000000",
    outcome: 'QUERY_FAILED',
  },
  { sql: 'SELECT n, pad FROM big', outcome: 'truncated' },
  { sql: 'SELECT a.n FROM big a, big b', outcome: 'truncated' },
];

describe('a hostile SQL corpus against SQLite', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let serving: ServingProcess;
  let database: string;
  let auditFile: string;
  let before: string;

  beforeAll(async () => {
    demo = await demoCopy();
    database = join(demo.dir, 'hostile.sqlite');
    auditFile = join(demo.dir, 'hostile-audit.log');
    await makeDatabase(database);
    before = createHash('sha256')
      .update(await readFile(database))
      .digest('hex');
    // The demo's own databases replaced by this one.
    const base = (await readFile(demo.config, 'utf8')).split('\ndatabases:')[0];
    const config = join(demo.dir, 'hostile.yaml');
    await writeFile(
      config,
      `${base}\n${[
        // The corpus arrives faster than a person's calls: the per-principal rate limit is not under test here.
        'limits: { rateLimit: { perSecond: 1000, burst: 1000 } }',
        'databases:',
        '  - name: target',
        '    driver: sqlite',
        `    path: ${database}`,
        '    tables: ["customers", "orders", "settings", "big", "keyed_last", "customer_logins", "order_view", "token_view", "api_tokens"]',
        '    exclude: ["customers.email"]',
        '    maxRows: 100',
        '    maxResultBytes: 65536',
        '    statementTimeoutMs: 1000',
        '    maxMemoryBytes: 67108864',
        '',
      ].join('\n')}`,
    );
    serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
  });
  afterAll(async () => {
    await serving?.stop();
    await demo?.cleanup();
  });

  const query = (sql: string, params: unknown[] = []) => queryTool(serving.url, 'target', 'hostile', sql, params);

  it(`refuses ${REFUSED.length} statements, bounds ${BOUNDED.length} and runs ${ALLOWED.length} harmless ones, writes nothing, leaks nothing, audits each`, async () => {
    expect(REFUSED.length + BOUNDED.length).toBeGreaterThanOrEqual(100);
    const answers = await runCorpus(query, { refused: REFUSED, allowed: ALLOWED, bounded: BOUNDED }, (sql, kind) =>
      kind === 'refused' && sql.includes('?') ? ['SECRET-HASH-1'] : [],
    );
    const everything = answers.join('\n');
    for (const secret of SECRETS) expect(everything).not.toContain(secret);
    expect(everything).not.toMatch(/root:x:0|\/bin\/(ba)?sh/);
    // Nothing written: the file is as it was, and no copy was made.
    expect(
      createHash('sha256')
        .update(await readFile(database))
        .digest('hex'),
    ).toBe(before);
    await expect(readFile('/tmp/mcpd-hostile-copy.db')).rejects.toThrow();
    // One audit record per statement that reached the tool (the empty ones are refused by its schema first).
    const reached = [...REFUSED, ...ALLOWED, ...BOUNDED.map((entry) => entry.sql)].filter((sql) => sql.length > 0);
    const records = await waitForAudit(auditFile, (record) => record.client === 'hostile', reached.length);
    expect(records).toHaveLength(reached.length);
    expect(records.every((record) => record.op === 'query' && record.database?.name === 'target')).toBe(true);
    const denied = records.filter((record) => record.decision === 'deny');
    expect(denied.length).toBeGreaterThanOrEqual(REFUSED.length - 10);
    expect(JSON.stringify(records)).not.toMatch(/SECRET-/);
  }, 120_000);

  it('refuses a database that is not configured, as unknown', async () => {
    const [message] = await messagesOf(
      await postModern(
        serving.url,
        'tools/call',
        { name: 'query', arguments: { database: '/etc/passwd', sql: 'SELECT 1' } },
        { client: 'hostile-elsewhere' },
      ),
    );
    expect(JSON.stringify(message)).toContain('INVALID_ARGUMENT: no database has that name');
  });
});
