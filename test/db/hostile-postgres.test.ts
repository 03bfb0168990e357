import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { type Corpus, queryTool, runCorpus } from '../helpers/databases.js';
import { type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * The hostile SQL corpus against a real PostgreSQL (Debian's) behind the real server, connected as
 * a role made by the recipe of docs/databases.md (table-level SELECT grants only: the column
 * checks proven here are mcpd's own, from the plan). What must hold for the whole corpus: nothing
 * written or created, no excluded value in any answer, nothing read outside the tables the policy
 * allows (no file, no catalog, no other role), one audit record per attempt.
 */

const SECRETS = ['SECRET-HASH', 'SECRET-TOKEN', 'SECRET-MAIL', 'SECRET-NOTE', 'root:x:0'];

const SETUP = `
  CREATE TABLE customers (id serial PRIMARY KEY, name text, email text, password_hash text, city text);
  CREATE INDEX customers_city ON customers (city, password_hash);
  CREATE INDEX customers_hash_lower ON customers (lower(password_hash));
  CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric);
  CREATE TABLE api_tokens (id serial PRIMARY KEY, customer_id int, token text);
  CREATE TABLE internal_notes (id serial PRIMARY KEY, body text);
  CREATE SCHEMA private;
  CREATE TABLE private.keys (id int, material text);
  CREATE SEQUENCE ticket_numbers;
  INSERT INTO customers (name, email, password_hash, city)
    SELECT 'c' || g, 'SECRET-MAIL-' || g, 'SECRET-HASH-' || g, CASE WHEN g % 2 = 0 THEN 'Oslo' ELSE 'Lima' END
    FROM generate_series(1, 50) g;
  INSERT INTO orders (customer_id, total) SELECT g, g * 10 FROM generate_series(1, 50) g;
  INSERT INTO api_tokens (customer_id, token) SELECT g, 'SECRET-TOKEN-' || g FROM generate_series(1, 5) g;
  INSERT INTO internal_notes (body) VALUES ('SECRET-NOTE-1');
  INSERT INTO private.keys VALUES (1, 'SECRET-KEY-1');
  CREATE VIEW customer_logins AS SELECT name, password_hash FROM customers;
  CREATE VIEW order_view AS SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id;
  ANALYZE;
  -- The read-only role of docs/databases.md.
  CREATE ROLE mcpd_reader LOGIN PASSWORD 'reader-password';
  GRANT CONNECT ON DATABASE shop TO mcpd_reader;
  GRANT USAGE ON SCHEMA public TO mcpd_reader;
  GRANT SELECT ON customers, orders, api_tokens, customer_logins, order_view TO mcpd_reader;
  ALTER ROLE mcpd_reader SET default_transaction_read_only = on;
`;

const REFUSED: readonly string[] = [
  // More than one statement (the extended protocol takes one).
  'SELECT 1; DELETE FROM orders',
  'SELECT 1; SELECT 2',
  'SELECT name FROM customers; SELECT password_hash FROM customers',
  // Writes of every kind, direct and hidden in a CTE.
  'INSERT INTO orders (customer_id, total) VALUES (1, 1)',
  'INSERT INTO orders (customer_id, total) SELECT 1, 1 RETURNING *',
  'UPDATE orders SET total = 0',
  "UPDATE customers SET city = 'x' RETURNING password_hash",
  'DELETE FROM orders',
  'DELETE FROM customers RETURNING password_hash',
  'MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DELETE',
  'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d',
  'WITH u AS (UPDATE orders SET total = 0 RETURNING id) SELECT count(*) FROM u',
  'WITH i AS (INSERT INTO orders (customer_id, total) VALUES (1, 1) RETURNING id) SELECT id FROM i',
  'SELECT * FROM orders FOR UPDATE',
  'SELECT id FROM orders FOR SHARE',
  'SELECT id FROM orders FOR NO KEY UPDATE',
  'CREATE TABLE copy AS SELECT * FROM orders',
  'SELECT * INTO copy FROM orders',
  'CREATE TEMP TABLE t (x int)',
  'CREATE TEMP VIEW v AS SELECT password_hash FROM customers',
  'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql',
  'DROP TABLE orders',
  'TRUNCATE orders',
  'ALTER TABLE orders ADD COLUMN x int',
  'CREATE INDEX ON orders (total)',
  'VACUUM orders',
  'ANALYZE orders',
  'REFRESH MATERIALIZED VIEW mv',
  "COPY orders TO '/tmp/mcpd-orders.csv'",
  "COPY orders FROM '/etc/passwd'",
  "COPY (SELECT 1) TO PROGRAM 'touch /tmp/mcpd-pwned'",
  'COPY orders TO STDOUT',
  "SELECT nextval('ticket_numbers')",
  "SELECT setval('ticket_numbers', 100)",
  // Transactions, settings and roles.
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT s',
  'SET ROLE postgres',
  'SET SESSION AUTHORIZATION postgres',
  'RESET ROLE',
  'SET default_transaction_read_only = off',
  "SELECT set_config('default_transaction_read_only', 'off', false)",
  "SELECT set_config('role', 'postgres', false)",
  'SET statement_timeout = 0',
  'GRANT SELECT ON internal_notes TO mcpd_reader',
  'ALTER ROLE mcpd_reader SUPERUSER',
  'CREATE ROLE evil SUPERUSER',
  'LISTEN x',
  "NOTIFY x, 'y'",
  'DISCARD ALL',
  'PREPARE p AS SELECT password_hash FROM customers',
  'EXECUTE p',
  'DEALLOCATE ALL',
  'DECLARE c CURSOR FOR SELECT password_hash FROM customers',
  'DO $$ BEGIN PERFORM 1; END $$',
  'CALL some_procedure()',
  // Files, programs, other servers, other sessions.
  "SELECT pg_read_file('/etc/passwd')",
  "SELECT pg_read_binary_file('/etc/passwd')",
  "SELECT * FROM pg_ls_dir('/')",
  "SELECT pg_stat_file('/etc/passwd')",
  "SELECT lo_import('/etc/passwd')",
  "SELECT lo_export(1, '/tmp/mcpd-lo')",
  "SELECT * FROM dblink('host=127.0.0.1', 'SELECT 1') AS t(x int)",
  'SELECT pg_reload_conf()',
  'SELECT pg_terminate_backend(pg_backend_pid())',
  'SELECT pg_cancel_backend(1)',
  "SELECT pg_catalog.pg_read_file('pg_hba.conf')",
  "LOAD 'auto_explain'",
  // The catalogs (they name hidden tables and columns, and other roles).
  'SELECT * FROM pg_authid',
  'SELECT usename, passwd FROM pg_shadow',
  'SELECT * FROM pg_user',
  'SELECT * FROM pg_settings',
  'SELECT * FROM pg_stat_activity',
  'SELECT attname FROM pg_attribute',
  'SELECT relname FROM pg_class',
  'SELECT * FROM information_schema.columns',
  "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'",
  'SELECT * FROM information_schema.tables',
  'SELECT * FROM pg_catalog.pg_tables',
  "SELECT current_setting('data_directory')",
  // Excluded columns, by every route.
  'SELECT * FROM customers',
  'SELECT c.* FROM customers c',
  'SELECT c FROM customers c',
  'SELECT to_jsonb(c) FROM customers c',
  'SELECT row_to_json(c.*) FROM customers c',
  'SELECT password_hash FROM customers',
  'SELECT "password_hash" FROM customers',
  'SELECT email FROM customers',
  'SELECT customers.email FROM customers',
  'SELECT (SELECT password_hash FROM customers LIMIT 1)',
  "SELECT name FROM customers WHERE password_hash LIKE 'SECRET%'",
  'SELECT name FROM customers WHERE password_hash = $1',
  'SELECT name FROM customers ORDER BY password_hash',
  'SELECT count(*) FROM customers GROUP BY password_hash',
  'SELECT length(password_hash) FROM customers',
  'SELECT sum(length(password_hash)) FROM customers',
  'SELECT name FROM customers UNION SELECT password_hash FROM customers',
  'SELECT name FROM customers UNION ALL SELECT email FROM customers',
  'WITH x AS (SELECT password_hash AS p FROM customers) SELECT p FROM x',
  'WITH x AS MATERIALIZED (SELECT password_hash AS p FROM customers) SELECT p FROM x',
  'SELECT p FROM (SELECT password_hash AS p FROM customers OFFSET 0) s',
  'SELECT * FROM (SELECT * FROM customers OFFSET 0) s',
  'SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE password_hash > $1)',
  "SELECT CASE WHEN password_hash > 'S' THEN 1 ELSE 0 END FROM customers",
  "SELECT json_build_object('p', password_hash) FROM customers",
  "SELECT string_agg(password_hash, ',') FROM customers",
  "SELECT name FROM customers WHERE lower(password_hash) = 'secret-hash-1'",
  "SELECT name FROM customers WHERE city = 'Oslo' AND password_hash > ''",
  'SELECT * FROM customer_logins',
  'SELECT o.total, c.password_hash FROM orders o JOIN customers c ON c.id = o.customer_id',
  'SELECT o.total FROM orders o JOIN customers c ON c.password_hash = c.email',
  'SELECT max(email) FROM customers',
  // Excluded, unlisted and unreachable tables.
  'SELECT * FROM api_tokens',
  'SELECT count(*) FROM api_tokens',
  'SELECT o.id FROM orders o JOIN api_tokens t ON t.customer_id = o.customer_id',
  'SELECT * FROM internal_notes',
  'SELECT * FROM private.keys',
  'SELECT * FROM pg_catalog.pg_namespace',
  // The user's own plan requests, and statements the server cannot parse.
  'EXPLAIN SELECT password_hash FROM customers',
  'EXPLAIN ANALYZE DELETE FROM orders',
  'SELEC name FROM customers',
  '-- only a comment',
];

const ALLOWED: readonly string[] = [
  'SELECT id, name, city FROM customers ORDER BY id LIMIT 3',
  'SELECT count(*) FROM customers',
  'SELECT city, count(*) FROM customers GROUP BY city',
  'SELECT name FROM customer_logins LIMIT 2',
  'SELECT * FROM order_view LIMIT 2',
  "SELECT name FROM customers WHERE city = 'Oslo' ORDER BY name LIMIT 2",
  'SELECT o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.city = $1 LIMIT 2',
];

const BOUNDED: Corpus['bounded'] = [
  { sql: 'SELECT pg_sleep(30)', outcome: 'TIMEOUT' },
  { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c', outcome: 'TIMEOUT' },
  { sql: 'SELECT count(*) FROM generate_series(1, 100000000000)', outcome: 'TIMEOUT' },
  { sql: 'SELECT g FROM generate_series(1, 100000) g', outcome: 'truncated' },
  { sql: "SELECT repeat('x', 100000) FROM orders", outcome: 'truncated' },
];

describe('a hostile SQL corpus against PostgreSQL', () => {
  let postgres: PostgresServer;
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let serving: ServingProcess;
  let auditFile: string;
  let before: string;
  const state = async () =>
    JSON.stringify(
      await postgres.sql(
        `SELECT (SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM customers c) AS customers,
                (SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o) AS orders,
                (SELECT count(*) FROM pg_class) AS relations,
                (SELECT count(*) FROM pg_roles) AS roles,
                (SELECT last_value FROM ticket_numbers) AS ticket`,
        [],
        'shop',
      ),
    );

  beforeAll(async () => {
    postgres = await startPostgres();
    await postgres.sql('CREATE DATABASE shop');
    await postgres.sql(SETUP, [], 'shop');
    before = await state();
    demo = await demoCopy();
    auditFile = join(demo.dir, 'hostile-pg-audit.log');
    await writeFile(join(demo.dir, 'reader.password'), 'reader-password\n');
    await writeFile(
      join(demo.dir, 'hostile-pg.yaml'),
      [
        (await import('node:fs')).readFileSync(demo.config, 'utf8').split('\ndatabases:')[0],
        // The corpus arrives faster than a person's calls: the per-principal rate limit is not under test here.
        'limits: { rateLimit: { perSecond: 1000, burst: 1000 } }',
        'databases:',
        '  - name: target',
        '    driver: postgres',
        `    url: postgres://mcpd_reader@127.0.0.1:${postgres.port}/shop`,
        '    passwordFile: reader.password',
        '    tables: ["customers", "orders", "api_tokens", "customer_logins", "order_view", "internal_notes", "keys"]',
        '    exclude: ["customers.email"]',
        '    maxRows: 100',
        '    maxResultBytes: 65536',
        '    statementTimeoutMs: 1000',
        '',
      ].join('\n'),
    );
    serving = await serveMcpd([
      '--config',
      join(demo.dir, 'hostile-pg.yaml'),
      '--port',
      '0',
      '--audit-file',
      auditFile,
    ]);
  }, 60_000);
  afterAll(async () => {
    await serving?.stop();
    await postgres?.close();
    await demo?.cleanup();
  });

  const query = (sql: string, params: unknown[] = []) => queryTool(serving.url, 'target', 'hostile-pg', sql, params);

  it(`refuses ${REFUSED.length} statements, bounds ${BOUNDED.length}, runs ${ALLOWED.length} harmless ones; writes nothing, leaks nothing, audits each`, async () => {
    expect(REFUSED.length + BOUNDED.length).toBeGreaterThanOrEqual(100);
    const answers = await runCorpus(query, { refused: REFUSED, allowed: ALLOWED, bounded: BOUNDED }, (sql, kind) =>
      sql.includes('$1') ? [kind === 'refused' ? 'SECRET-HASH-1' : 'Oslo'] : [],
    );
    const everything = answers.join('\n');
    for (const secret of SECRETS) expect(everything).not.toContain(secret);
    expect(await state()).toBe(before);
    const reached = [...REFUSED, ...ALLOWED, ...BOUNDED.map((entry) => entry.sql)];
    const records = await waitForAudit(
      auditFile,
      (record) => record.client === 'hostile-pg' && record.op === 'query',
      reached.length,
    );
    expect(records).toHaveLength(reached.length);
    expect(records.every((record) => record.op === 'query' && record.database?.name === 'target')).toBe(true);
    expect(JSON.stringify(records)).not.toMatch(/SECRET-|reader-password/);
  }, 180_000);

  it('describes only what the policy shows and the role may read', async () => {
    const [message] = await messagesOf(
      await postModern(
        serving.url,
        'tools/call',
        { name: 'describe_database', arguments: { database: 'target' } },
        { client: 'hostile-pg' },
      ),
    );
    const tables = (
      message as {
        result?: { structuredContent?: { tables: { name: string; columns: { name: string; type: string }[] }[] } };
      }
    ).result?.structuredContent?.tables;
    expect(tables?.map((table) => table.name).sort()).toEqual(['customer_logins', 'customers', 'order_view', 'orders']);
    expect(tables?.find((table) => table.name === 'customers')?.columns).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'name', type: 'text' },
      { name: 'city', type: 'text' },
    ]);
    expect(tables?.find((table) => table.name === 'customer_logins')?.columns.map((column) => column.name)).toEqual([
      'name',
    ]);
  });

  it('refuses to work through a role that may do more than read', async () => {
    await postgres.sql('ALTER ROLE mcpd_reader SUPERUSER', [], 'shop');
    try {
      const fresh = await serveMcpd(['--config', join(demo.dir, 'hostile-pg.yaml'), '--port', '0']);
      try {
        const [message] = await messagesOf(
          await postModern(fresh.url, 'tools/call', {
            name: 'query',
            arguments: { database: 'target', sql: 'SELECT id FROM orders LIMIT 1' },
          }),
        );
        expect(JSON.stringify(message)).toContain('the database role may do more than read (superuser');
      } finally {
        await fresh.stop();
      }
    } finally {
      await postgres.sql('ALTER ROLE mcpd_reader NOSUPERUSER', [], 'shop');
    }
  });
});
