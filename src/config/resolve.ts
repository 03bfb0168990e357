import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUILTIN_DATABASE_EXCLUDES, BUILTIN_EXCLUDES } from './defaults.js';
import { ConfigError, type ConfigProblem } from './problems.js';
import { oneKeyPerPrincipal } from './rules.js';
import type { ParsedConfig } from './schema.js';
import type {
  AuthConfig,
  Config,
  DatabaseConfig,
  JwtSettings,
  RedisSettings,
  RootConfig,
  TlsMaterial,
} from './types.js';

/**
 * From the parsed config to the one mcpd runs on: root URIs become absolute paths, relative paths
 * are anchored at the config file, secrets are read from their files and variables, and defaults
 * taken from other sections are filled in. Problems are collected by key and thrown together.
 */

/** Reads a UTF-8 file (absolute path); throws the file system's error. The loader passes its reader. */
export type ReadText = (path: string) => string;

export interface ResolveContext {
  /** The config file: relative paths are resolved against its directory. */
  readonly file: string;
  /** Where `sha256Env` keys are looked up. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readText: ReadText;
}

export function resolveConfig(
  parsed: ParsedConfig,
  { file, env, readText }: ResolveContext,
): Omit<Config, 'sourceSha256'> {
  const base = dirname(file);
  const problems: ConfigProblem[] = [];
  const secrets = new SecretReader(base, readText, problems);
  const roots: RootConfig[] = parsed.roots.map((root, index) => {
    const path = rootPath(root.uri, base);
    if (typeof path !== 'string') {
      problems.push({ key: `roots[${index}].uri`, message: `${path.problem} (got ${JSON.stringify(root.uri)})` });
      return undefined as unknown as RootConfig;
    }
    return {
      name: root.name,
      description: root.description,
      uri: pathToFileURL(path).href,
      path,
      read: root.read ?? parsed.accessPolicy.read,
      write: root.write ?? parsed.accessPolicy.write,
      hardLinks: root.hardLinks ?? parsed.accessPolicy.hardLinks,
    };
  });
  const databases: DatabaseConfig[] = parsed.databases.map((database, index) => {
    const exclude = [...new Set([...BUILTIN_DATABASE_EXCLUDES, ...database.exclude])];
    if (database.driver === 'postgres') {
      const { passwordFile, passwordEnv, tls: tlsFiles, ...settings } = database;
      const tls = tlsFiles ? secrets.tls(tlsFiles, `databases[${index}].tls`) : null;
      let password: string | null = null;
      if (passwordFile !== undefined) {
        password = secrets.file(passwordFile, `databases[${index}].passwordFile`).trim();
      }
      if (passwordEnv !== undefined) {
        password = env[passwordEnv] ?? null;
        if (password === null) {
          secrets.problem(`databases[${index}].passwordEnv`, `environment variable ${passwordEnv} is not set`);
        }
      }
      return { ...settings, exclude, password, tls };
    }
    const path = rootPath(database.path, base);
    if (typeof path !== 'string') {
      problems.push({
        key: `databases[${index}].path`,
        message: `${path.problem} (got ${JSON.stringify(database.path)})`,
      });
      return undefined as unknown as DatabaseConfig;
    }
    return { ...database, path, exclude };
  });
  const { tls: tlsFiles, publicUrl: configuredUrl, ...serverSettings } = parsed.server;
  const publicUrl = configuredUrl ?? defaultPublicUrl(parsed.server.host, parsed.server.port);
  const tls = tlsFiles
    ? {
        cert: secrets.file(tlsFiles.certFile, 'server.tls.certFile'),
        key: secrets.file(tlsFiles.keyFile, 'server.tls.keyFile'),
      }
    : null;
  const auth = resolveAuth(parsed.auth, publicUrl, secrets, env);
  const redis = parsed.cluster.redis ? resolveRedis(parsed.cluster.redis, secrets, env) : null;
  const hmacKey = resolveHmacKey(parsed.audit, secrets, env);
  if (problems.length > 0) throw new ConfigError(problems, file);
  const {
    $schema: _schema,
    server: _server,
    auth: _auth,
    grants,
    accessPolicy,
    roots: _roots,
    databases: _databases,
    ...sections
  } = parsed;
  return {
    source: file,
    server: { ...serverSettings, publicUrl, tls },
    auth,
    grants: grants ?? null,
    accessPolicy: { read: accessPolicy.read, write: accessPolicy.write },
    exclude: [...new Set([...BUILTIN_EXCLUDES, ...accessPolicy.exclude])],
    roots,
    databases,
    // limits, audit, log, resources, shutdown, reload, metrics, tracing: used as parsed, but for
    ...sections,
    // the audit file, anchored at the config file (the key keeps its place among them).
    audit: {
      sink: sections.audit.sink,
      path: sections.audit.path ? resolve(base, sections.audit.path) : null,
      hmacKey,
      rotate: { maxBytes: sections.audit.rotate?.maxBytes ?? null, interval: sections.audit.rotate?.interval ?? null },
      otlp: sections.audit.otlp ?? null,
    },
    cluster: { ...sections.cluster, redis },
  };
}

function resolveRedis(
  redis: NonNullable<ParsedConfig['cluster']['redis']>,
  secrets: SecretReader,
  env: Readonly<Record<string, string | undefined>>,
): RedisSettings {
  const { passwordFile, passwordEnv, tls, ...settings } = redis;
  let password: string | null = null;
  if (passwordFile !== undefined) password = secrets.file(passwordFile, 'cluster.redis.passwordFile').trim();
  if (passwordEnv !== undefined) {
    password = env[passwordEnv] ?? null;
    if (password === null)
      secrets.problem('cluster.redis.passwordEnv', `environment variable ${passwordEnv} is not set`);
  }
  const wantsTls = tls !== undefined || redis.url?.startsWith('rediss://') === true;
  return { ...settings, password, tls: wantsTls ? secrets.tls(tls ?? {}, 'cluster.redis.tls') : null };
}

/** The audit chain's key: at least 32 bytes, from one place. */
function resolveHmacKey(
  audit: ParsedConfig['audit'],
  secrets: SecretReader,
  env: Readonly<Record<string, string | undefined>>,
): string | null {
  if (audit.hmacKeyFile !== undefined && audit.hmacKeyEnv !== undefined) {
    secrets.problem('audit.hmacKeyEnv', 'give one of hmacKeyFile, hmacKeyEnv');
    return null;
  }
  let key: string | null = null;
  let at = 'audit.hmacKeyFile';
  if (audit.hmacKeyFile !== undefined) key = secrets.file(audit.hmacKeyFile, at).trim();
  if (audit.hmacKeyEnv !== undefined) {
    at = 'audit.hmacKeyEnv';
    key = env[audit.hmacKeyEnv]?.trim() ?? null;
    if (key === null) {
      secrets.problem(at, `environment variable ${audit.hmacKeyEnv} is not set`);
      return null;
    }
  }
  if (key !== null && Buffer.byteLength(key) < 32) {
    secrets.problem(at, `the key is ${Buffer.byteLength(key)} bytes; use at least 32 (e.g. openssl rand -hex 32)`);
  }
  return key;
}

function defaultPublicUrl(host: string, port: number): string {
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${shown}:${port}/mcp`;
}

/** Reads secret material named by the config, recording problems by key instead of throwing. */
class SecretReader {
  constructor(
    private readonly base: string,
    private readonly readText: ReadText,
    private readonly problems: ConfigProblem[],
  ) {}

  file(path: string, key: string): string {
    try {
      return this.readText(resolve(this.base, path));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.problems.push({
        key,
        message: `cannot read ${JSON.stringify(path)}: ${code === 'ENOENT' ? 'file not found' : code}`,
      });
      return '';
    }
  }

  /** A client's TLS settings with their PEM files read; `key` is where they sit in the config. */
  tls(
    files: {
      readonly caFile?: string;
      readonly certFile?: string;
      readonly keyFile?: string;
      readonly servername?: string;
    },
    key: string,
  ): TlsMaterial {
    return {
      ...(files.caFile ? { ca: this.file(files.caFile, `${key}.caFile`) } : {}),
      ...(files.certFile ? { cert: this.file(files.certFile, `${key}.certFile`) } : {}),
      ...(files.keyFile ? { key: this.file(files.keyFile, `${key}.keyFile`) } : {}),
      ...(files.servername ? { servername: files.servername } : {}),
    };
  }

  problem(key: string, message: string): void {
    this.problems.push({ key, message });
  }
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

function resolveAuth(
  auth: ParsedConfig['auth'],
  publicUrl: string,
  secrets: SecretReader,
  env: Readonly<Record<string, string | undefined>>,
): AuthConfig {
  switch (auth.mode) {
    case 'none':
      return { mode: 'none' };
    case 'apiKeys': {
      const keys = auth.apiKeys.map((key, index) => {
        const at = `auth.apiKeys[${index}]`;
        let hash = key.sha256;
        let source: 'sha256' | 'sha256File' | 'sha256Env' = 'sha256';
        if (key.sha256File !== undefined) {
          source = 'sha256File';
          hash = secrets.file(key.sha256File, `${at}.sha256File`).trim();
        }
        if (key.sha256Env !== undefined) {
          source = 'sha256Env';
          hash = env[key.sha256Env]?.trim();
          if (!hash) secrets.problem(`${at}.sha256Env`, `environment variable ${key.sha256Env} is not set`);
        }
        const sha256 = (hash ?? '').toLowerCase();
        if (hash && !HEX_SHA256.test(sha256)) {
          secrets.problem(at, 'the key hash must be 64 hex characters (the SHA-256 of the key)');
        }
        return { principal: key.principal, sha256, scopes: key.scopes, source };
      });
      for (const { key, message } of oneKeyPerPrincipal(keys)) secrets.problem(key, message);
      return { mode: 'apiKeys', apiKeys: keys.map(({ source: _source, ...key }) => key) };
    }
    case 'jwt': {
      const { jwksFile, audience, authorizationServers, ...jwt } = auth.jwt;
      let jwks: JwtSettings['jwks'] = null;
      if (jwksFile !== undefined) {
        const text = secrets.file(jwksFile, 'auth.jwt.jwksFile');
        try {
          const parsed = text ? (JSON.parse(text) as { keys?: unknown }) : { keys: [] };
          if (!Array.isArray(parsed.keys)) throw new Error('no "keys" array');
          jwks = { keys: parsed.keys as Record<string, unknown>[] };
        } catch (error) {
          secrets.problem('auth.jwt.jwksFile', `not a JWKS document (${(error as Error).message})`);
        }
      }
      return {
        mode: 'jwt',
        jwt: {
          ...jwt,
          jwks,
          audience: audience ?? publicUrl,
          authorizationServers: authorizationServers ?? [jwt.issuer],
        },
      };
    }
  }
}

function rootPath(uri: string, base: string): string | { problem: string } {
  if (uri.includes('\0')) return { problem: 'must not contain a NUL byte' };
  if (/^[a-z][a-z0-9+.-]*:/i.test(uri)) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return { problem: 'not a valid URI' };
    }
    if (url.protocol !== 'file:') return { problem: 'only file:// URIs are supported' };
    if (url.hostname !== '' && url.hostname !== 'localhost') return { problem: 'file:// URIs must not name a host' };
    try {
      return resolve(fileURLToPath(url));
    } catch (error) {
      return { problem: `not a usable file URI (${(error as Error).message})` };
    }
  }
  return isAbsolute(uri) ? resolve(uri) : resolve(base, uri);
}
