import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { AuditLog } from '../audit/log.js';
import type { ServerOverrides } from '../config/load.js';
import { ConfigError } from '../config/problems.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import type { Operation, Principal } from '../policy/types.js';

// Each command loads what it runs, when it runs: `--version` and `--help` load nothing, and a
// command never pays for the modules of another (the HTTP edge, the SDK, the audit sinks).
const load = {
  config: () => import('../config/load.js'),
  core: () => import('../app/core.js'),
  httpApp: () => import('../app/http.js'),
  stdioApp: () => import('../app/stdio.js'),
  audit: () => import('../audit/log.js'),
  sinks: () => import('../audit/sink.js'),
  logger: () => import('../ops/logger.js'),
  services: () => import('../services.js'),
  policy: () => import('../policy/types.js'),
};

/** Exit codes: 0 done, 1 failed at run time (or explain said deny), 2 bad usage or configuration. */
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

const USAGE = `mcpd ${VERSION}: scoped, audited access to workspace roots over MCP

Usage:
  mcpd [serve] [options]          serve Streamable HTTP on /mcp (default)
  mcpd stdio [options]            serve one client over stdin/stdout
  mcpd check-config FILE          validate FILE and print the resolved configuration
  mcpd explain PATH --op OP       print the policy decision for PATH (OP: read, write, list)
  mcpd healthcheck [options]      exit 0 when the server this config describes answers /health
  mcpd audit verify FILE...       check the audit chain across FILEs (oldest first); exit 1 if broken

Options:
  --config FILE     configuration file (default: $MCPD_CONFIG, else the embedded demo)
  --host HOST       bind address (MCPD_HOST)             --port PORT   port, 0 for any (MCPD_PORT)
  --log-level LVL   fatal..trace, silent (MCPD_LOG_LEVEL) --audit-file F append audit lines to F
  --root NAME       explain: root that a relative PATH is resolved against
  --principal NAME  explain: judge as this principal (with its --scope S, repeatable)
  --json            explain, audit verify: print the result as JSON
  --key-file F      audit verify: the chain's HMAC key, from F  --key-env V   or from variable V
  -h, --help        this text                            -v, --version
`;

/**
 * Everything of the process the CLI uses, passed in: arguments, environment, the three streams and
 * signals. cli/process.ts builds it from the real process (the only code that touches it); tests
 * build their own and run commands in-process.
 */
export interface CliHost {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: NodeJS.ReadableStream & Readable;
  readonly stdout: NodeJS.WritableStream & Writable;
  readonly stderr: NodeJS.WritableStream & Writable;
  /** The process id the audit chain's genesis names (0 for an in-process host). */
  readonly pid?: number;
  /** Calls `handler` on each delivery of `signal`. */
  onSignal(signal: NodeJS.Signals, handler: () => void): void;
  /** Ends the process at once (a second stop signal); in-process hosts record it instead. */
  exitNow(code: number): void;
}

class UsageError extends Error {}

function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

function parseCommandLine(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      'audit-file': { type: 'string' },
      op: { type: 'string' },
      root: { type: 'string' },
      principal: { type: 'string' },
      scope: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'key-file': { type: 'string' },
      'key-env': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const [command = 'serve', ...rest] = positionals;
  return { command, rest, values };
}

type Flags = ReturnType<typeof parseCommandLine>['values'];

function flagOverrides(values: Flags): ServerOverrides {
  const overrides: ServerOverrides = {};
  if (values.host !== undefined) overrides.host = values.host;
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port)) throw new UsageError(`--port must be an integer (got ${JSON.stringify(values.port)})`);
    overrides.port = port;
  }
  if (values['log-level'] !== undefined) overrides.logLevel = values['log-level'];
  if (values['audit-file'] !== undefined) {
    overrides.auditSink = 'file';
    // A path given on the command line is relative to where the command runs, not to the config.
    overrides.auditPath = resolve(values['audit-file']);
  }
  return overrides;
}

async function configure(host: CliHost, values: Flags, file?: string): Promise<Config> {
  const { configPathFromEnv, loadConfig, overridesFromEnv } = await load.config();
  const env = overridesFromEnv(host.env);
  if (env.problems.length > 0) throw new ConfigError(env.problems, null);
  if (env.overrides.auditPath !== undefined) env.overrides.auditPath = resolve(env.overrides.auditPath);
  return loadConfig({
    file: file ?? values.config ?? configPathFromEnv(host.env),
    overrides: [env.overrides, flagOverrides(values)],
    env: host.env,
  });
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Signals, in the one place that handles them. The first SIGTERM/SIGINT starts the ordered
 * shutdown; a second one gives up on it: the audit log is flushed and the process exits 1 at once.
 * SIGHUP (and, if configured, a change of the config file) reloads. SIGUSR1 begins a new audit
 * file after logrotate has moved the current one (as nginx reopens its logs).
 */
function handleSignals(
  host: CliHost,
  options: {
    onStop: (signal: NodeJS.Signals) => void;
    onReload: () => void;
    onForce: (signal: NodeJS.Signals) => void;
    onReopen: () => void;
  },
): void {
  let stopping = false;
  for (const signal of STOP_SIGNALS) {
    host.onSignal(signal, () => {
      if (stopping) {
        options.onForce(signal);
        return;
      }
      stopping = true;
      options.onStop(signal);
    });
  }
  host.onSignal('SIGHUP', () => options.onReload());
  host.onSignal('SIGUSR1', () => options.onReopen());
}

/** Reloads the config the process was started with (same file, same environment, same flags). */
function reloader(
  host: CliHost,
  values: Flags,
  logger: Logger,
  app: { reload(config: Config): Promise<{ ignored: string[] }> },
  audit: AuditLog,
  started: string,
): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  let applied = started;
  return () => {
    running = running.then(async () => {
      try {
        const config = await configure(host, values);
        const before = applied;
        const { ignored } = await app.reload(config);
        // The chain says when the rules changed, and from which file to which.
        applied = config.sourceSha256;
        audit.reloaded(before, applied, ignored);
        if (ignored.length > 0) logger.warn({ ignored }, 'reloaded; these settings need a restart and were kept');
        else logger.info('configuration reloaded');
      } catch (error) {
        const reason = error instanceof ConfigError ? error.message : String(error);
        logger.error({ reason }, 'reload refused; the previous configuration stays in force');
      }
    });
    return running;
  };
}

async function runServer(
  host: CliHost,
  values: Flags,
  transport: 'http' | 'stdio',
  start: (
    config: Config,
    logger: Logger,
    audit: AuditLog,
  ) => Promise<{
    reload(config: Config): Promise<{ ignored: string[] }>;
    shutdown(): Promise<void>;
    ended?: Promise<string>;
    close?(): Promise<void>;
  }>,
): Promise<number> {
  const config = await configure(host, values);
  if (transport === 'stdio' && config.audit.sink === 'stdout') {
    throw new ConfigError(
      [{ key: 'audit.sink', message: '"stdout" cannot be used with --stdio: stdout carries the protocol' }],
      config.source,
    );
  }
  const [{ createLogger }, { openAudit }, { watchFile }] = await Promise.all([
    load.logger(),
    load.core(),
    import('../fs/watch.js'),
  ]);
  // log.format auto: readable lines for a person at a terminal, JSON lines for anything else.
  const pretty =
    config.log.format === 'pretty' ||
    (config.log.format === 'auto' && (host.stderr as { isTTY?: boolean }).isTTY === true);
  const logger = createLogger(config.log.level, { destination: host.stderr, pretty });
  const audit = openAudit(config, logger, {
    version: VERSION,
    host: hostname(),
    pid: host.pid ?? 0,
    configSha256: config.sourceSha256,
  });
  // Signals are handled from before the listener opens: a SIGHUP that arrives while the server
  // starts is applied once it has (its default action would end the process), a stop signal
  // stops it as soon as it can.
  let reload: (() => Promise<void>) | undefined;
  let reloadWanted = false;
  let ended: (reason: 'stdin closed') => void = () => {};
  const stopped = new Promise<NodeJS.Signals | 'stdin closed'>((resolve) => {
    ended = resolve;
    handleSignals(host, {
      onStop: resolve,
      onReload: () => {
        if (reload) void reload();
        else reloadWanted = true;
      },
      onReopen: () => {
        logger.info({ file: config.audit.path }, 'SIGUSR1: beginning a new audit file');
        audit.reopen();
      },
      onForce: (signal) => {
        logger.warn({ signal }, 'second signal: exiting now');
        void audit.close().finally(() => logger.flush(() => host.exitNow(EXIT_FAILURE)));
      },
    });
  });
  const app = await start(config, logger, audit);
  reload = reloader(host, values, logger, app, audit, config.sourceSha256);
  if (reloadWanted) void reload();
  const reloadNow = reload;
  const stopWatching = config.reload.watchConfig
    ? watchFile(config.source, config.reload.debounceMs, () => void reloadNow())
    : () => {};
  void app.ended?.then(() => ended('stdin closed'));
  const reason = await stopped;
  stopWatching();
  logger.info({ reason }, 'shutting down');
  if (reason === 'stdin closed' && app.close) await app.close();
  else await app.shutdown();
  await audit.close();
  logger.info('stopped');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return EXIT_OK;
}

function runHttp(host: CliHost, values: Flags): Promise<number> {
  return runServer(host, values, 'http', async (config, logger, audit) => {
    const [{ createObservers, startHttpApp }, { buildCommitFromEnv }, { getHeapStatistics }] = await Promise.all([
      load.httpApp(),
      load.config(),
      import('node:v8'),
    ]);
    const observers = createObservers(config, { version: VERSION, commit: buildCommitFromEnv(host.env) });
    const app = await startHttpApp(config, { logger, audit, version: VERSION, observers });
    logger.info(
      {
        url: app.url,
        // How to connect, with Claude Code; the pretty format shows it as part of the message.
        connect: `claude mcp add --transport http mcpd-http ${app.url}`,
        ...(app.metricsUrl ? { metricsUrl: app.metricsUrl } : {}),
        config: config.source,
        roots: config.roots.map((root) => root.name),
        // Container deployments size the heap from the cgroup limit (deploy/docker/entrypoint.sh).
        heapLimitBytes: getHeapStatistics().heap_size_limit,
      },
      'listening',
    );
    return app;
  });
}

function runStdio(host: CliHost, values: Flags): Promise<number> {
  return runServer(host, values, 'stdio', async (config, logger, audit) => {
    const { startStdioApp } = await load.stdioApp();
    const app = await startStdioApp(config, {
      logger,
      audit,
      version: VERSION,
      input: host.stdin,
      output: host.stdout,
    });
    logger.info({ config: config.source, roots: config.roots.map((root) => root.name) }, 'serving stdio');
    return { ...app, ended: app.closed.then(() => 'stdin closed') };
  });
}

async function checkConfig(host: CliHost, values: Flags, rest: string[]): Promise<number> {
  const [file] = rest;
  if (!file) throw new UsageError('check-config needs a FILE');
  const config = await configure(host, values, file);
  const services = await runtimeFor(config);
  const { describeRoots } = await import('../mcp/tools/roots.js');
  const summary = {
    ...config,
    // Key material and passwords are validated, never printed.
    server: { ...config.server, tls: config.server.tls ? { cert: 'PEM (loaded)', key: '[redacted]' } : null },
    audit: { ...config.audit, hmacKey: config.audit.hmacKey === null ? null : '[redacted]' },
    cluster: {
      ...config.cluster,
      redis: config.cluster.redis && {
        ...config.cluster.redis,
        password: config.cluster.redis.password === null ? null : '[redacted]',
        tls: config.cluster.redis.tls && { ...config.cluster.redis.tls, key: '[redacted]' },
      },
    },
    databases: config.databases.map((database) =>
      database.driver === 'postgres'
        ? {
            ...database,
            password: database.password === null ? null : '[redacted]',
            tls: database.tls && { ...database.tls, key: '[redacted]' },
          }
        : database,
    ),
    roots: services.gate.policy.roots.map((root) => ({ ...root })),
    listRoots: describeRoots(config),
  };
  write(host.stdout, JSON.stringify(summary, null, 2));
  write(host.stderr, `${config.source}: OK (${config.roots.length} roots)`);
  return EXIT_OK;
}

async function explain(host: CliHost, values: Flags, rest: string[]): Promise<number> {
  const [path] = rest;
  if (path === undefined) throw new UsageError('explain needs a PATH');
  const op = values.op as Operation | undefined;
  const { OPERATIONS } = await load.policy();
  if (!op || !OPERATIONS.includes(op)) throw new UsageError(`explain needs --op ${OPERATIONS.join('|')}`);
  if (values.scope !== undefined && values.principal === undefined) throw new UsageError('--scope needs --principal');
  const config = await configure(host, values);
  const { gate } = await runtimeFor(config);
  const { ANONYMOUS, LOCAL } = await load.policy();
  // Without --principal: the HTTP caller when auth is off, else what the roots themselves allow (the
  // stdio user); with it: that caller's grants too.
  const principal: Principal = values.principal
    ? { id: values.principal, scopes: values.scope ?? [] }
    : config.auth.mode === 'none'
      ? ANONYMOUS
      : LOCAL;
  const decision = await gate.policy.decide(principal, op, path, { root: values.root });
  const shown = decision.allow
    ? {
        allow: true,
        op,
        root: decision.root,
        path: decision.target.relPath,
        uri: decision.target.uri,
        kind: decision.target.kind,
        rule: decision.rule,
        reason: decision.reason,
      }
    : decision;
  if (values.json) {
    write(host.stdout, JSON.stringify(shown, null, 2));
  } else {
    const where = decision.allow
      ? decision.target.uri
      : (decision.uri ?? (decision.rule === 'unknown-root' ? '(no root by that name)' : '(outside every root)'));
    write(host.stdout, `${decision.allow ? 'ALLOW' : 'DENY'} ${op} ${where}`);
    write(host.stdout, `  rule:   ${decision.rule}`);
    write(host.stdout, `  reason: ${decision.reason}`);
  }
  return decision.allow ? EXIT_OK : EXIT_FAILURE;
}

/** The runtime a config builds, with an audit log that keeps nothing (check-config, explain). */
async function runtimeFor(config: Config) {
  const [{ buildRuntime }, { AuditLog }, { DISCARD_SINK }] = await Promise.all([
    load.services(),
    load.audit(),
    load.sinks(),
  ]);
  return buildRuntime(config, new AuditLog(DISCARD_SINK));
}

/** How long a container health check waits for /health. */
const HEALTHCHECK_TIMEOUT_MS = 3000;

/** Exit 0 when the mcpd serving this config answers /health; for HEALTHCHECK without curl. */
async function healthcheck(host: CliHost, values: Flags): Promise<number> {
  const config = await configure(host, values);
  const [{ listenerUrl }, { probeHealth }] = await Promise.all([import('../http/url.js'), import('../http/probe.js')]);
  const { host: bind, port, tls } = config.server;
  // A wildcard bind is reached over loopback.
  const target = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind;
  const url = new URL(listenerUrl(tls ? 'https' : 'http', target, port, '/health'));
  const healthy = await probeHealth(url, HEALTHCHECK_TIMEOUT_MS);
  if (!healthy) write(host.stderr, `mcpd: ${url.hostname}:${port} is not healthy`);
  return healthy ? EXIT_OK : EXIT_FAILURE;
}

/**
 * `mcpd audit verify FILE...`: 0 when every chain is intact, 1 when something is wrong (each
 * problem named with its file, line and sequence number), 2 for bad usage or an unreadable file.
 */
async function auditCommand(host: CliHost, values: Flags, rest: string[]): Promise<number> {
  const [subcommand, ...files] = rest;
  if (subcommand !== 'verify') throw new UsageError('audit needs a subcommand: verify');
  if (files.length === 0) throw new UsageError('audit verify needs at least one FILE');
  let key: Buffer | null = null;
  if (values['key-file'] !== undefined && values['key-env'] !== undefined) {
    throw new UsageError('give one of --key-file, --key-env');
  }
  const { readKeyFile, verifyAuditFiles } = await import('../audit/verify.js');
  if (values['key-file'] !== undefined) key = await readKeyFile(values['key-file']);
  if (values['key-env'] !== undefined) {
    const text = host.env[values['key-env']];
    if (text === undefined) throw new UsageError(`environment variable ${values['key-env']} is not set`);
    key = Buffer.from(text.trim());
  }
  let result: Awaited<ReturnType<typeof verifyAuditFiles>>;
  try {
    result = await verifyAuditFiles(files, key);
  } catch (error) {
    write(host.stderr, `mcpd: cannot read the audit files: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  if (values.json) write(host.stdout, JSON.stringify(result));
  else {
    for (const note of result.notes) write(host.stdout, `note: ${note}`);
    for (const problem of result.problems) {
      write(
        host.stdout,
        `${problem.file}:${problem.line}: ${problem.kind}${problem.seq === null ? '' : ` (seq ${problem.seq})`}: ${problem.detail}`,
      );
    }
    write(
      host.stdout,
      `${result.ok ? 'OK' : 'BROKEN'}: ${result.records} records, ${result.chains} chain${result.chains === 1 ? '' : 's'}, ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}`,
    );
  }
  const keyed = result.problems.some((problem) => problem.kind === 'keyed');
  return keyed ? EXIT_USAGE : result.ok ? EXIT_OK : EXIT_FAILURE;
}

/** Runs one command line against `host`; resolves with the exit code. */
export async function main(host: CliHost): Promise<number> {
  try {
    const { command, rest, values } = parseCommandLine([...host.argv]);
    if (values.help) {
      write(host.stdout, USAGE);
      return EXIT_OK;
    }
    if (values.version) {
      write(host.stdout, VERSION);
      return EXIT_OK;
    }
    switch (command) {
      case 'serve':
        return await runHttp(host, values);
      case 'stdio':
        return await runStdio(host, values);
      case 'check-config':
        return await checkConfig(host, values, rest);
      case 'explain':
        return await explain(host, values, rest);
      case 'healthcheck':
        return await healthcheck(host, values);
      case 'audit':
        return await auditCommand(host, values, rest);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      write(host.stderr, `mcpd: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      write(host.stderr, `mcpd: ${(error as Error).message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      write(host.stderr, `mcpd: cannot listen: ${(error as Error).message}`);
      return EXIT_FAILURE;
    }
    write(host.stderr, `mcpd: fatal: ${(error as Error).stack ?? String(error)}`);
    return EXIT_FAILURE;
  }
}
