import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import type * as z from 'zod';
import {
  type AuthConfig,
  BUILTIN_EXCLUDES,
  type Config,
  configSchema,
  type JwtSettings,
  type ParsedConfig,
  type RootConfig,
} from './schema.js';

/** The embedded default: the demo workspace shipped with mcpd. */
export const DEMO_CONFIG_PATH = fileURLToPath(new URL('../../demo/mcpd.yaml', import.meta.url));

export interface ConfigProblem {
  /** The key, in the form `roots[1].write[0]`, or the file for problems that have no key. */
  readonly key: string;
  readonly message: string;
}

/** A configuration that cannot be used. Its message names every bad key, the value and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly problems: readonly ConfigProblem[],
    readonly source: string | null,
  ) {
    super(
      `invalid configuration${source ? ` in ${source}` : ''}:\n${problems.map((p) => `  ${p.key}: ${p.message}`).join('\n')}`,
    );
  }
}

/** Server settings that may be overridden from the environment or the command line. */
export interface ServerOverrides {
  host?: string;
  port?: number;
  logLevel?: string;
  auditSink?: string;
  auditPath?: string;
  maxBodyBytes?: number;
  metricsPort?: number;
}

/** `MCPD_*` variable -> the override it sets. Only the config module reads the environment. */
const ENV_OVERRIDES: Record<string, { key: keyof ServerOverrides; numeric?: boolean }> = {
  MCPD_HOST: { key: 'host' },
  MCPD_PORT: { key: 'port', numeric: true },
  MCPD_LOG_LEVEL: { key: 'logLevel' },
  MCPD_AUDIT_SINK: { key: 'auditSink' },
  MCPD_AUDIT_PATH: { key: 'auditPath' },
  MCPD_MAX_BODY_BYTES: { key: 'maxBodyBytes', numeric: true },
  MCPD_METRICS_PORT: { key: 'metricsPort', numeric: true },
};

const OVERRIDE_TARGETS: Record<keyof ServerOverrides, readonly [string, string]> = {
  host: ['server', 'host'],
  port: ['server', 'port'],
  logLevel: ['log', 'level'],
  auditSink: ['audit', 'sink'],
  auditPath: ['audit', 'path'],
  maxBodyBytes: ['server', 'maxBodyBytes'],
  metricsPort: ['metrics', 'port'],
};

export function overridesFromEnv(env: Readonly<Record<string, string | undefined>>): {
  overrides: ServerOverrides;
  problems: ConfigProblem[];
} {
  const overrides: ServerOverrides = {};
  const problems: ConfigProblem[] = [];
  for (const [variable, { key, numeric }] of Object.entries(ENV_OVERRIDES)) {
    const raw = env[variable];
    if (raw === undefined || raw === '') continue;
    if (numeric) {
      const value = Number(raw);
      if (!Number.isInteger(value)) {
        problems.push({ key: variable, message: `must be an integer (got ${JSON.stringify(raw)})` });
        continue;
      }
      (overrides as Record<string, unknown>)[key] = value;
    } else {
      (overrides as Record<string, unknown>)[key] = raw;
    }
  }
  return { overrides, problems };
}

/** The commit this build came from, stamped by the image build (MCPD_BUILD_COMMIT); for mcpd_build_info. */
export function buildCommitFromEnv(env: Readonly<Record<string, string | undefined>>): string {
  const commit = env.MCPD_BUILD_COMMIT?.trim();
  return commit && /^[\w.-]{1,64}$/.test(commit) ? commit : 'unknown';
}

/** Which variable a config file path comes from when no `--config` is given. */
export function configPathFromEnv(env: Readonly<Record<string, string | undefined>>): string | undefined {
  return env.MCPD_CONFIG || undefined;
}

export interface LoadOptions {
  /** The config file; the embedded demo config when absent. */
  file?: string;
  /** Applied in order: later wins (environment first, then flags). */
  overrides?: readonly ServerOverrides[];
  /** Where `sha256Env` keys are looked up. */
  env?: Readonly<Record<string, string | undefined>>;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const file = resolve(options.file ?? DEMO_CONFIG_PATH);
  const raw = readYaml(file);
  for (const layer of options.overrides ?? []) applyOverrides(raw, layer);
  return parseConfig(raw, file, options.env ?? {});
}

/** Validates an already-parsed document. `file` anchors relative paths and names the source. */
export function parseConfig(
  raw: unknown,
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(result.error.issues, raw), file);
  return freeze(resolveConfig(result.data, file, env));
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String(code);
    throw new ConfigError([{ key: file, message: `cannot read the config file: ${reason}` }], file);
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const at = lineCounter.linePos(error.pos[0]);
        return { key: `${file}:${at.line}:${at.col}`, message: `YAML: ${error.message.split('\n')[0]}` };
      }),
      file,
    );
  }
  const value = document.toJS() ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([{ key: file, message: 'the document must be a mapping of settings' }], file);
  }
  return value;
}

function applyOverrides(raw: unknown, overrides: ServerOverrides): void {
  const target = raw as Record<string, Record<string, unknown> | undefined>;
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const [section, field] = OVERRIDE_TARGETS[key as keyof ServerOverrides];
    const existing = target[section];
    const block = existing && typeof existing === 'object' ? existing : {};
    block[field] = value;
    target[section] = block;
  }
}

export function formatKey(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out || '(top level)';
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = raw;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): ConfigProblem[] {
  return issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return {
        key: formatKey([...issue.path, ...(issue.keys.length === 1 ? issue.keys : [])]),
        message:
          issue.keys.length === 1
            ? 'unknown setting (check the spelling)'
            : `unknown settings: ${issue.keys.join(', ')}`,
      };
    }
    const value = valueAt(raw, issue.path);
    const shown = value === undefined ? '' : ` (got ${truncate(JSON.stringify(value))})`;
    const message = value === undefined && issue.code === 'invalid_type' ? 'required' : issue.message;
    return { key: formatKey(issue.path), message: `${message}${shown}` };
  });
}

function truncate(text: string | undefined): string {
  if (text === undefined) return 'undefined';
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function resolveConfig(parsed: ParsedConfig, file: string, env: Readonly<Record<string, string | undefined>>): Config {
  const base = dirname(file);
  const problems: ConfigProblem[] = [];
  const secrets = new SecretReader(base, problems);
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
  const { tls: tlsFiles, publicUrl: configuredUrl, ...serverSettings } = parsed.server;
  const publicUrl = configuredUrl ?? defaultPublicUrl(parsed.server.host, parsed.server.port);
  const tls = tlsFiles
    ? {
        cert: secrets.file(tlsFiles.certFile, 'server.tls.certFile'),
        key: secrets.file(tlsFiles.keyFile, 'server.tls.keyFile'),
      }
    : null;
  const auth = resolveAuth(parsed.auth, publicUrl, secrets, env);
  if (problems.length > 0) throw new ConfigError(problems, file);
  return {
    source: file,
    server: { ...serverSettings, publicUrl, tls },
    auth,
    grants: parsed.grants ?? null,
    accessPolicy: { read: parsed.accessPolicy.read, write: parsed.accessPolicy.write },
    exclude: [...new Set([...BUILTIN_EXCLUDES, ...parsed.accessPolicy.exclude])],
    roots,
    limits: parsed.limits,
    audit: {
      sink: parsed.audit.sink,
      path: parsed.audit.path ? resolve(base, parsed.audit.path) : null,
    },
    log: parsed.log,
    resources: parsed.resources,
    shutdown: parsed.shutdown,
    reload: parsed.reload,
    metrics: parsed.metrics,
    tracing: parsed.tracing,
  };
}

function defaultPublicUrl(host: string, port: number): string {
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${shown}:${port}/mcp`;
}

/** Reads secret material named by the config, recording problems by key instead of throwing. */
class SecretReader {
  constructor(
    private readonly base: string,
    private readonly problems: ConfigProblem[],
  ) {}

  file(path: string, key: string): string {
    try {
      return readFileSync(resolve(this.base, path), 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.problems.push({
        key,
        message: `cannot read ${JSON.stringify(path)}: ${code === 'ENOENT' ? 'file not found' : code}`,
      });
      return '';
    }
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
      const resolved = {
        mode: 'apiKeys' as const,
        apiKeys: auth.apiKeys.map((key, index) => {
          const at = `auth.apiKeys[${index}]`;
          let hash = key.sha256;
          if (key.sha256File !== undefined) hash = secrets.file(key.sha256File, `${at}.sha256File`).trim();
          if (key.sha256Env !== undefined) {
            hash = env[key.sha256Env]?.trim();
            if (!hash) secrets.problem(`${at}.sha256Env`, `environment variable ${key.sha256Env} is not set`);
          }
          const sha256 = (hash ?? '').toLowerCase();
          if (hash && !HEX_SHA256.test(sha256)) {
            secrets.problem(at, 'the key hash must be 64 hex characters (the SHA-256 of the key)');
          }
          return { principal: key.principal, sha256, scopes: key.scopes };
        }),
      };
      // Keys from files and variables are only known now; one key must not name two principals.
      resolved.apiKeys.forEach((key, index) => {
        const first = resolved.apiKeys.findIndex((other) => other.sha256 === key.sha256);
        const bothInline = auth.apiKeys[index]?.sha256 !== undefined && auth.apiKeys[first]?.sha256 !== undefined;
        if (key.sha256 && first !== index && !bothInline) {
          secrets.problem(
            `auth.apiKeys[${index}]`,
            `the same key as auth.apiKeys[${first}]; each key must name one principal`,
          );
        }
      });
      return resolved;
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

function freeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) freeze(child);
  }
  return value;
}
