import type * as z from 'zod';
import type { jwtSchema } from './auth.js';
import type { ParsedConfig } from './schema.js';

/**
 * The resolved configuration, derived from the schema's output types: what resolution leaves as
 * parsed is taken as is, and only what it changes (paths made absolute, secrets read, defaults
 * filled in from other sections) is spelled out here.
 */

/** T with readonly properties and readonly arrays at its top level, as resolution freezes it. */
type Frozen<T> = { readonly [K in keyof T]: T[K] extends readonly (infer U)[] ? readonly U[] : T[K] };

type ParsedRoot = ParsedConfig['roots'][number];
type ParsedApiKey = Extract<ParsedConfig['auth'], { mode: 'apiKeys' }>['apiKeys'][number];

/**
 * A root with read, write and hardLinks filled in from accessPolicy. `uri` is the root as clients
 * see it: a file:// URI without a trailing slash.
 */
export type RootConfig = Frozen<
  Required<ParsedRoot> & {
    /** Absolute host path the URI denotes (not yet canonicalised). */
    path: string;
  }
>;

/** An API key with its hash read from wherever it was configured. */
export type ApiKey = Frozen<
  Omit<ParsedApiKey, 'sha256' | 'sha256File' | 'sha256Env'> & {
    /** Lowercase hex SHA-256 of the key. */
    sha256: string;
  }
>;

export type JwtSettings = Omit<z.output<typeof jwtSchema>, 'jwksFile' | 'audience' | 'authorizationServers'> & {
  /** The JWKS document when it came from a file; null when keys are fetched from jwksUrl. */
  readonly jwks: { readonly keys: readonly Record<string, unknown>[] } | null;
  readonly audience: string;
  readonly authorizationServers: readonly string[];
};

/** Authentication with every secret source resolved (files read, variables looked up). */
export type AuthConfig =
  | Frozen<Extract<ParsedConfig['auth'], { mode: 'none' }>>
  | { readonly mode: 'apiKeys'; readonly apiKeys: readonly ApiKey[] }
  | { readonly mode: 'jwt'; readonly jwt: JwtSettings };

export type Grant = Frozen<NonNullable<ParsedConfig['grants']>[number]>;

/** The sections resolution replaces; every other section is used as parsed. */
type Resolved = '$schema' | 'server' | 'auth' | 'grants' | 'accessPolicy' | 'roots' | 'databases' | 'audit' | 'cluster';

type ParsedDatabase = ParsedConfig['databases'][number];

/** TLS material as read from the configured PEM files, for a client connection (Redis, PostgreSQL). */
export interface TlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
}

/**
 * A database as mcpd runs on it: its excludes with the built-in ones; a SQLite file absolute; a
 * PostgreSQL password read from its file or variable (never part of the URL).
 */
export type DatabaseConfig = Frozen<
  | Extract<ParsedDatabase, { driver: 'sqlite' }>
  | (Omit<Extract<ParsedDatabase, { driver: 'postgres' }>, 'passwordFile' | 'passwordEnv' | 'tls'> & {
      readonly password: string | null;
      /** PEM material read from the configured files; null when `tls` is not set. */
      readonly tls: TlsMaterial | null;
    })
>;

type ParsedRedis = NonNullable<ParsedConfig['cluster']['redis']>;

/** Redis settings with the password and TLS material read from their files and variables. */
export type RedisSettings = Readonly<Omit<ParsedRedis, 'passwordFile' | 'passwordEnv' | 'tls'>> & {
  readonly password: string | null;
  /** TLS options (PEM read), or null for plain TCP. */
  readonly tls: TlsMaterial | null;
};

/** The resolved, frozen configuration the rest of mcpd runs on. */
export type Config = Readonly<Omit<ParsedConfig, Resolved>> & {
  /** Absolute path of the file this came from. */
  readonly source: string;
  /** SHA-256 of that file's bytes as read ('' for a config built from no file): named by the audit chain. */
  readonly sourceSha256: string;
  readonly server: Omit<ParsedConfig['server'], 'tls' | 'publicUrl'> & {
    /** The canonical URL of the /mcp endpoint (resource identifier, JWT audience). */
    readonly publicUrl: string;
    /** PEM material, read from the configured files. */
    readonly tls: { readonly cert: string; readonly key: string } | null;
  };
  readonly auth: AuthConfig;
  /** Explicit grants, or null for the defaults (see DEFAULT_SCOPES). */
  readonly grants: readonly Grant[] | null;
  /** The per-root defaults; hardLinks is folded into each root, exclude into `exclude`. */
  readonly accessPolicy: Frozen<Pick<ParsedConfig['accessPolicy'], 'read' | 'write'>>;
  /** Built-in plus configured excludes, deduplicated; always wins. */
  readonly exclude: readonly string[];
  readonly roots: readonly RootConfig[];
  /** `path` absolute; `exclude` holds the built-in database excludes too. */
  readonly databases: readonly DatabaseConfig[];
  /** `path` absolute, or null when the sink is stderr. */
  readonly audit: Frozen<
    Omit<ParsedConfig['audit'], 'path' | 'hmacKeyFile' | 'hmacKeyEnv' | 'rotate' | 'otlp'> & {
      path: string | null;
      /** When the file sink begins a new file (both null: never). */
      rotate: { maxBytes: number | null; interval: 'hourly' | 'daily' | null };
      /** The collector every record is also shipped to, or null. */
      otlp: NonNullable<ParsedConfig['audit']['otlp']> | null;
      /** The chain's HMAC key, read from its file or variable; null for a plain SHA-256 chain. */
      hmacKey: string | null;
    }
  >;
  readonly cluster: Omit<ParsedConfig['cluster'], 'redis'> & { readonly redis: RedisSettings | null };
};
