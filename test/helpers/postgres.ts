import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';
import { until } from './wait.js';

export interface PostgresServer {
  readonly port: number;
  /** The superuser's password (host connections need one). */
  readonly password: string;
  /** Runs SQL as the superuser on `database` (default postgres); returns the rows. */
  sql(text: string, values?: unknown[], database?: string): Promise<Record<string, unknown>[]>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** Debian's server binaries (/usr/lib/postgresql/VERSION/bin), newest first. */
async function binaries(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = await readdir(root).catch(() => [] as string[]);
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('PostgreSQL is not installed: run scripts/ensure-tools.sh (npm test runs it first)');
  return join(root, newest, 'bin');
}

/**
 * A real PostgreSQL (Debian's) on a free loopback port, in a directory of its own, run as the
 * unprivileged `postgres` user when the tests run as root (the server refuses root). Host
 * connections need a password (scram-sha-256), as a deployed server's would.
 */
export async function startPostgres(options: { tls?: { cert: string; key: string } } = {}): Promise<PostgresServer> {
  const bin = await binaries();
  const dir = await mkdtemp(join(tmpdir(), 'mcpd-postgres-'));
  const port = await freePort();
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot
    ? {
        uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
        gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
      }
    : undefined;
  if (owner) await chown(dir, owner.uid, owner.gid);
  // The server's certificate and key, readable by the server alone (it refuses a key others can read).
  const tlsArgs: string[] = [];
  if (options.tls) {
    for (const [name, pem] of [
      ['server.crt', options.tls.cert],
      ['server.key', options.tls.key],
    ] as const) {
      await writeFile(join(dir, name), pem, { mode: 0o600 });
      if (owner) await chown(join(dir, name), owner.uid, owner.gid);
    }
    tlsArgs.push(
      '-c',
      'ssl=on',
      '-c',
      `ssl_cert_file=${join(dir, 'server.crt')}`,
      '-c',
      `ssl_key_file=${join(dir, 'server.key')}`,
    );
  }
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`);
  await chmod(pwfile, 0o644);
  const run = (command: string, args: string[]) =>
    asRoot
      ? { command: 'runuser', args: ['-u', 'postgres', '--', join(bin, command), ...args] }
      : { command: join(bin, command), args };
  const init = run('initdb', [
    '-D',
    join(dir, 'data'),
    '-U',
    'postgres',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    `--pwfile=${pwfile}`,
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  execFileSync(init.command, init.args, { stdio: 'pipe' });
  const server = run('postgres', [
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'full_page_writes=off',
    ...tlsArgs,
  ]);
  let log = '';
  const child: ChildProcess = spawn(server.command, server.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr?.on('data', (chunk: Buffer) => {
    log = `${log}${chunk}`.slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const connect = async (database = 'postgres') => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database });
    await client.connect();
    return client;
  };
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${log}`);
      try {
        const client = await connect();
        await client.end();
        return true;
      } catch {
        return false;
      }
    },
    { what: `postgres on port ${port} to accept connections`, timeoutMs: 30_000, intervalMs: 100 },
  );
  return {
    port,
    password,
    async sql(text, values = [], database = 'postgres') {
      const client = await connect(database);
      try {
        return (await client.query(text, values)).rows;
      } finally {
        await client.end();
      }
    },
    async close() {
      // The postmaster itself (runuser does not pass signals on): SIGINT is its fast shutdown.
      const pid = Number((await readFile(join(dir, 'data', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGINT');
      else if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
