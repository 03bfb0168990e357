import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import type * as z from 'zod';
import { ConfigError, type ConfigProblem } from './problems.js';
import { resolveConfig } from './resolve.js';
import { type Config, configSchema } from './schema.js';

export { ConfigError, type ConfigProblem } from './problems.js';

/**
 * Loading the config: the file read as YAML, environment and command-line overrides applied, schema
 * issues turned into problems by key; then resolve.ts resolves it and the result is frozen.
 */

/** The embedded default: the demo workspace shipped with mcpd. */
export const DEMO_CONFIG_PATH = fileURLToPath(new URL('../../demo/mcpd.yaml', import.meta.url));

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
  const { value: raw, sha256 } = readYaml(file);
  for (const layer of options.overrides ?? []) applyOverrides(raw, layer);
  return parseConfig(raw, file, options.env ?? {}, sha256);
}

/** Validates an already-parsed document. `file` anchors relative paths and names the source. */
export function parseConfig(
  raw: unknown,
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
  sourceSha256 = '',
): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(result.error.issues, raw), file);
  return freeze({
    ...resolveConfig(result.data, { file, env, readText: (path) => readFileSync(path, 'utf8') }),
    sourceSha256,
  });
}

/** The file's settings, and the SHA-256 of its bytes (which the audit chain names). */
function readYaml(file: string): { value: unknown; sha256: string } {
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
  return { value, sha256: createHash('sha256').update(text).digest('hex') };
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

function freeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) freeze(child);
  }
  return value;
}
