import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryTool } from '../helpers/databases.js';
import { type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { makeCertificates } from '../helpers/tls.js';
import { requireCommand } from '../helpers/tools.js';
import { demoCopy, tempDir } from '../helpers/workspace.js';

/** mcpd to a PostgreSQL that speaks TLS: the server's certificate verified against the configured CA. */
describe('PostgreSQL over TLS', () => {
  let postgres: PostgresServer;
  let certs: Awaited<ReturnType<typeof tempDir>>;
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  const serving: ServingProcess[] = [];

  const serve = async (name: string, tls: string) => {
    const base = (await readFile(demo.config, 'utf8')).split('\ndatabases:')[0];
    const file = join(demo.dir, name);
    await writeFile(
      file,
      [
        base,
        'databases:',
        '  - name: secure',
        '    driver: postgres',
        `    url: postgres://mcpd_reader@127.0.0.1:${postgres.port}/postgres`,
        '    passwordFile: reader.password',
        `    tls: ${tls}`,
        '    tables: ["ledger"]',
        '',
      ].join('\n'),
    );
    const started = await serveMcpd(['--config', file, '--port', '0']);
    serving.push(started);
    return started;
  };

  beforeAll(async () => {
    certs = await tempDir('mcpd-pg-tls-');
    await makeCertificates(requireCommand('openssl'), certs.dir);
    postgres = await startPostgres({
      tls: {
        cert: await readFile(join(certs.dir, 'tls/tls.crt'), 'utf8'),
        key: await readFile(join(certs.dir, 'tls/tls.key'), 'utf8'),
      },
    });
    await postgres.sql(`
      CREATE TABLE ledger (id int, amount int); INSERT INTO ledger VALUES (1, 10), (2, 20);
      CREATE ROLE mcpd_reader LOGIN PASSWORD 'reader-password'; GRANT SELECT ON ledger TO mcpd_reader;`);
    demo = await demoCopy();
    await writeFile(join(demo.dir, 'reader.password'), 'reader-password\n');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(serving.map((process) => process.stop()));
    await postgres?.close();
    await demo?.cleanup();
    await certs?.cleanup();
  });

  it('connects over TLS when the server certificate verifies against the configured CA', async () => {
    const server = await serve('tls.yaml', `{ caFile: ${join(certs.dir, 'ca.pem')}, servername: localhost }`);
    const answer = await queryTool(server.url, 'secure', 'tls', 'SELECT sum(amount) FROM ledger');
    expect(answer.result?.isError, JSON.stringify(answer)).toBeFalsy();
    const [session] = await postgres.sql(
      "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'mcpd_reader'",
    );
    expect(session?.ssl).toBe(true);
  });

  it('refuses a server whose certificate the CA did not sign, and says why', async () => {
    const other = await tempDir('mcpd-pg-other-ca-');
    try {
      await makeCertificates(requireCommand('openssl'), other.dir);
      const server = await serve('wrong-ca.yaml', `{ caFile: ${join(other.dir, 'ca.pem')}, servername: localhost }`);
      const answer = await queryTool(server.url, 'secure', 'tls', 'SELECT sum(amount) FROM ledger');
      expect(answer.result?.content[0]?.text).toMatch(
        /^UNAVAILABLE: the database cannot be reached: .*(certificate|signature)/,
      );
    } finally {
      await other.cleanup();
    }
  });
});
