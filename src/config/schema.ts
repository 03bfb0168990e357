import proxyAddr from 'proxy-addr';
import * as z from 'zod';
import { globProblem as syntaxProblem } from '../globs.js';

/**
 * The one configuration schema. Every default has a name here and nowhere else; the JSON Schema
 * published in `schema/mcpd.config.schema.json` is generated from it.
 */

/** Excludes that apply whatever the file says: secrets never become reachable by omission. */
export const BUILTIN_EXCLUDES = [
  '.env',
  '.env.*',
  'credentials.*',
  '*.key',
  '*.pem',
  '*.p12',
  '*.pfx',
  'id_rsa*',
  'id_ecdsa*',
  'id_ed25519*',
  '.git',
  '.mcpd-tmp-*',
] as const;

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8000,
  /** The SDK's own default; a write_file body must fit in it. */
  maxBodyBytes: 4 * 1024 * 1024,
  sseKeepAliveMs: 15_000,
  /** A single read_file answer. Far below the 10 MB a stock SDK client accepts on stdio. */
  maxReadBytes: 1024 * 1024,
  /** All files of one read_multiple_files answer together. */
  maxBatchBytes: 2 * 1024 * 1024,
  /** Any one tool result as serialised JSON: the last guard, far below a stock client's 10 MB. */
  maxResultBytes: 4 * 1024 * 1024,
  maxBatchFiles: 50,
  maxWriteBytes: 4 * 1024 * 1024,
  listPageSize: 200,
  maxListPageSize: 1000,
  treeMaxDepth: 3,
  treeMaxEntries: 500,
  treeHardMaxEntries: 5000,
  searchMaxResults: 100,
  searchHardMaxResults: 1000,
  grepMaxMatches: 100,
  grepHardMaxMatches: 1000,
  grepMaxFileBytes: 8 * 1024 * 1024,
  /** Files a grep or search visits before it stops and says so; bounds the cost of one call. */
  walkMaxEntries: 100_000,
  /** A write's temp file untouched this long is a leftover of a killed process (writes take seconds). */
  staleTempFileMs: 15 * 60_000,
  /** A directory with more entries is refused by list_directory and skipped (and reported) by walks. */
  maxDirectoryEntries: 200_000,
  /** Directory entries all cached listings hold together (names and a byte each: about 50 bytes per entry). */
  listingCacheEntries: 500_000,
  datasetChunkBytes: 64 * 1024,
  resourcePageSize: 100,
  /** Collapse bursts of file-system events for one file into one notification. */
  watchDebounceMs: 100,
  /** Below Kubernetes' default 30 s termination grace, so we finish before SIGKILL. */
  shutdownGraceMs: 25_000,
  /** Above nginx's default upstream keepalive_timeout (60 s), so nginx closes idle connections first. */
  keepAliveTimeoutMs: 65_000,
  /** Node requires headersTimeout above keepAliveTimeout on reused connections. */
  headersTimeoutMs: 66_000,
  /** Receiving one whole request (headers and body); not the response, so streams are unaffected. */
  requestTimeoutMs: 120_000,
  maxConcurrentRequests: 256,
  maxConcurrentPerPrincipal: 32,
  ratePerSecond: 50,
  rateBurst: 100,
  /** Failed authentications per client address: past this, the address is refused before any key check. */
  authFailuresPerSecond: 2,
  authFailuresBurst: 20,
  toolTimeoutMs: 120_000,
  /** Long streaming tools get their own budget. */
  datasetTimeoutMs: 900_000,
  maxSubscriptionStreams: 1024,
  /** One principal's share of the streams, so that one caller cannot lock everyone else out. */
  maxSubscriptionStreamsPerPrincipal: 32,
  /** An SSE reader that takes nothing for this long is cut off instead of being buffered for. */
  sseStallTimeoutMs: 30_000,
  jwtClockToleranceSec: 30,
  /** Longest validity (exp - iat) of an access token accepted: a day. */
  jwtMaxLifetimeSec: 86_400,
  jwksCacheMaxAgeMs: 10 * 60_000,
  jwksRefetchCooldownMs: 30_000,
  reloadDebounceMs: 500,
} as const;

/** Scopes that grant access when no `grants` are configured. */
export const DEFAULT_SCOPES = { read: 'mcpd:read', write: 'mcpd:write' } as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127(\.\d{1,3}){3}$/.test(host);
}

function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'a glob must not be empty';
  if (pattern.includes('\0')) return 'a glob must not contain a NUL byte';
  if (pattern.startsWith('/')) return 'globs are relative to the root; remove the leading "/"';
  if (pattern.split('/').includes('..')) return 'globs must not contain ".." segments';
  return syntaxProblem(pattern);
}

const glob = z.string().superRefine((pattern, ctx) => {
  const problem = globProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const globList = z.array(glob);

const port = z.number().int().min(0).max(65_535);
const positiveInt = z.number().int().positive();

/**
 * A hard link is the same file under a second name, so a link named notes.md to .env would read the
 * secret under a readable name. Refused by default; a root on a store that links on purpose (a
 * package manager's) can allow it.
 */
const hardLinksSchema = z.enum(['refuse', 'allow']);

const rootSchema = z.strictObject({
  name: z.string().trim().min(1).max(200).describe('Shown to clients in list_roots and resource names.'),
  uri: z
    .string()
    .min(1)
    .describe('A file:// URI of an absolute directory, or a directory path relative to the config file.'),
  description: z.string().max(2000).default(''),
  read: globList.optional().describe('Globs (relative to the root) of readable files; defaults to accessPolicy.read.'),
  write: globList
    .optional()
    .describe('Globs of writable paths; defaults to accessPolicy.write. An empty list makes the root read-only.'),
  hardLinks: hardLinksSchema
    .optional()
    .describe('Whether files with more than one hard link are served; defaults to accessPolicy.hardLinks.'),
});

const serverSchema = z.strictObject({
  host: z.string().min(1).default(DEFAULTS.host),
  port: port.default(DEFAULTS.port),
  allowedHosts: z
    .array(z.string().min(1))
    .default([])
    .describe('Host header names accepted besides the loopback names (which are always accepted).'),
  allowedOrigins: z
    .array(z.string().min(1))
    .default([])
    .describe('Origin hostnames allowed to call /mcp from a browser, besides loopback origins.'),
  maxBodyBytes: positiveInt.default(DEFAULTS.maxBodyBytes),
  sseKeepAliveMs: z.number().int().min(0).default(DEFAULTS.sseKeepAliveMs),
  publicUrl: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe(
      'The canonical URL clients use for /mcp (e.g. https://mcp.example.com/mcp): the OAuth resource identifier, the ' +
        'JWT audience and the base of the protected-resource metadata. Default: http://HOST:PORT/mcp.',
    ),
  tls: z
    .strictObject({
      certFile: z.string().min(1).describe('PEM certificate chain; relative to the config file.'),
      keyFile: z.string().min(1).describe('PEM private key; relative to the config file.'),
    })
    .optional()
    .describe('Serve HTTPS directly (reloaded on SIGHUP). Behind nginx, leave this out and let nginx terminate TLS.'),
  keepAliveTimeoutMs: positiveInt.default(DEFAULTS.keepAliveTimeoutMs),
  headersTimeoutMs: positiveInt.default(DEFAULTS.headersTimeoutMs),
  requestTimeoutMs: z.number().int().min(0).default(DEFAULTS.requestTimeoutMs),
  trustedProxies: z
    .array(z.string().min(1).refine(isProxySpec, 'not an IP address, a CIDR, or loopback/linklocal/uniquelocal'))
    .default([])
    .describe(
      'Addresses or CIDRs of proxies whose X-Forwarded-For is believed (for client.address); e.g. ["127.0.0.1", "10.0.0.0/8"].',
    ),
});

/** What proxy-addr accepts: checked here so a bad entry fails at start-up, not on every request. */
function isProxySpec(value: string): boolean {
  try {
    proxyAddr.compile([value]);
    return true;
  } catch {
    return false;
  }
}

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'not a valid OAuth scope token');

const apiKeySchema = z
  .strictObject({
    principal: z.string().min(1).max(200).describe('The name this key authenticates as (in audit records and grants).'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (the SHA-256 of the key)')
      .optional()
      .describe('SHA-256 of the key, hex. The key itself is never stored.'),
    sha256File: z.string().min(1).optional().describe('File holding the hex SHA-256; relative to the config file.'),
    sha256Env: z.string().min(1).optional().describe('Environment variable holding the hex SHA-256.'),
    scopes: z.array(scopeToken).default([]),
  })
  .superRefine((key, ctx) => {
    const sources = [key.sha256, key.sha256File, key.sha256Env].filter((v) => v !== undefined).length;
    if (sources !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of sha256, sha256File, sha256Env' });
  });

const jwtSchema = z
  .strictObject({
    issuer: z.string().min(1).describe('Expected "iss" claim.'),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe('Expected "aud" claim; the canonical resource URL (server.publicUrl) when omitted.'),
    jwksUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('Where the signing keys are fetched (cached; refetched on an unknown kid).'),
    jwksFile: z.string().min(1).optional().describe('A JWKS document on disk; relative to the config file.'),
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
      .min(1)
      .default(['RS256', 'PS256', 'ES256', 'EdDSA'])
      .describe('Accepted signature algorithms; "none" and HMAC are never accepted.'),
    clockToleranceSec: z.number().int().min(0).max(300).default(DEFAULTS.jwtClockToleranceSec),
    maxLifetimeSec: positiveInt
      .default(DEFAULTS.jwtMaxLifetimeSec)
      .describe('Tokens valid for longer than this (exp - iat, or exp - now without iat) are refused.'),
    principalClaim: z.string().min(1).default('sub'),
    jwksCacheMaxAgeMs: positiveInt.default(DEFAULTS.jwksCacheMaxAgeMs),
    jwksRefetchCooldownMs: z
      .number()
      .int()
      .min(0)
      .default(DEFAULTS.jwksRefetchCooldownMs)
      .describe('A token with an unknown kid refetches the keys at most this often (key rotation vs. abuse).'),
    authorizationServers: z
      .array(z.url())
      .optional()
      .describe('Advertised in the protected-resource metadata; [issuer] when omitted.'),
  })
  .superRefine((jwt, ctx) => {
    if ((jwt.jwksUrl === undefined) === (jwt.jwksFile === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of jwksUrl, jwksFile' });
    }
  });

const authSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('none').describe('No authentication: only allowed on a loopback bind.') }),
  z.strictObject({
    mode: z.literal('apiKeys'),
    apiKeys: z.array(apiKeySchema).min(1).describe('Bearer keys, each stored as its SHA-256.'),
  }),
  z.strictObject({ mode: z.literal('jwt'), jwt: jwtSchema.describe('OAuth 2.1 resource server: verify bearer JWTs.') }),
]);

const grantSchema = z
  .strictObject({
    principals: z.array(z.string().min(1)).default([]).describe('Principal names this grant applies to.'),
    scopes: z.array(scopeToken).default([]).describe('Scopes any of which this grant applies to.'),
    roots: z.array(z.string().min(1)).min(1).default(['*']).describe('Root names, or "*" for every root.'),
    access: z
      .array(z.enum(['read', 'write']))
      .min(1)
      .describe('What the grant allows: read (and list), write. Never more than the root itself allows.'),
  })
  .superRefine((grant, ctx) => {
    if (grant.principals.length === 0 && grant.scopes.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'a grant needs principals or scopes to apply to' });
    }
  });

const accessPolicySchema = z.strictObject({
  read: globList
    .default(['*.md', '*.markdown', '*.txt', '*.json', '*.jsonl', '*.yaml', '*.yml', '*.csv'])
    .describe('Default read globs for roots that do not set their own.'),
  write: globList.default([]).describe('Default write globs for roots that do not set their own.'),
  hardLinks: hardLinksSchema
    .default('refuse')
    .describe(
      '"refuse": a regular file with more than one hard link is never read (it may be another name of an excluded file).',
    ),
  exclude: globList
    .default([])
    .describe(
      `Always wins, at any depth, and hides entries everywhere. Added to the built-in list: ${BUILTIN_EXCLUDES.join(', ')}.`,
    ),
});

const limitsSchema = z.strictObject({
  maxReadBytes: positiveInt.default(DEFAULTS.maxReadBytes),
  maxBatchBytes: positiveInt.default(DEFAULTS.maxBatchBytes),
  maxResultBytes: positiveInt
    .default(DEFAULTS.maxResultBytes)
    .describe(
      'Largest tool result (serialised JSON); a bigger one becomes a TOO_LARGE error asking to narrow the request.',
    ),
  maxBatchFiles: positiveInt.max(1000).default(DEFAULTS.maxBatchFiles),
  maxWriteBytes: positiveInt.default(DEFAULTS.maxWriteBytes),
  listPageSize: positiveInt.default(DEFAULTS.listPageSize),
  maxListPageSize: positiveInt.default(DEFAULTS.maxListPageSize),
  treeMaxDepth: positiveInt.max(64).default(DEFAULTS.treeMaxDepth),
  treeMaxEntries: positiveInt.default(DEFAULTS.treeMaxEntries),
  treeHardMaxEntries: positiveInt.default(DEFAULTS.treeHardMaxEntries),
  searchMaxResults: positiveInt.default(DEFAULTS.searchMaxResults),
  searchHardMaxResults: positiveInt.default(DEFAULTS.searchHardMaxResults),
  grepMaxMatches: positiveInt.default(DEFAULTS.grepMaxMatches),
  grepHardMaxMatches: positiveInt.default(DEFAULTS.grepHardMaxMatches),
  grepMaxFileBytes: positiveInt.default(DEFAULTS.grepMaxFileBytes),
  walkMaxEntries: positiveInt.default(DEFAULTS.walkMaxEntries),
  staleTempFileMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.staleTempFileMs)
    .describe(
      'At start-up, .mcpd-tmp-* files of writable roots untouched for this long (leftovers of a killed write) are removed.',
    ),
  maxDirectoryEntries: positiveInt
    .default(DEFAULTS.maxDirectoryEntries)
    .describe('A directory with more entries is refused by list_directory (TOO_LARGE) and skipped by walks.'),
  listingCacheEntries: positiveInt
    .default(DEFAULTS.listingCacheEntries)
    .describe('Entries of directory listings kept in memory across calls (least recently used go first).'),
  maxConcurrentRequests: positiveInt
    .default(DEFAULTS.maxConcurrentRequests)
    .describe('MCP requests served at once by this process; more get 429 with Retry-After.'),
  maxConcurrentPerPrincipal: positiveInt
    .default(DEFAULTS.maxConcurrentPerPrincipal)
    .describe('MCP requests served at once for one principal; more get 429 with Retry-After.'),
  rateLimit: z
    .strictObject({
      perSecond: z.number().positive().default(DEFAULTS.ratePerSecond),
      burst: positiveInt.default(DEFAULTS.rateBurst),
    })
    .prefault({})
    .describe('Token bucket per principal: sustained requests per second and the burst above it.'),
  authFailures: z
    .strictObject({
      perSecond: z.number().positive().default(DEFAULTS.authFailuresPerSecond),
      burst: positiveInt.default(DEFAULTS.authFailuresBurst),
    })
    .prefault({})
    .describe(
      'Token bucket of failed authentications per client address (behind trustedProxies, the forwarded one): ' +
        'once empty, the address gets 429 before any credential is checked, and only the first refusal is audited.',
    ),
  toolTimeoutMs: positiveInt.default(DEFAULTS.toolTimeoutMs).describe('A tool call running longer is cancelled.'),
  toolTimeouts: z
    .record(z.string(), positiveInt)
    .default({ process_large_dataset: DEFAULTS.datasetTimeoutMs })
    .describe('Per-tool overrides of toolTimeoutMs, by tool name.'),
  maxSubscriptionStreams: positiveInt
    .default(DEFAULTS.maxSubscriptionStreams)
    .describe('Open subscriptions/listen streams per process.'),
  maxSubscriptionStreamsPerPrincipal: positiveInt
    .default(DEFAULTS.maxSubscriptionStreamsPerPrincipal)
    .describe('Open subscriptions/listen streams per principal, within maxSubscriptionStreams.'),
  sseStallTimeoutMs: positiveInt
    .default(DEFAULTS.sseStallTimeoutMs)
    .describe('An SSE client that reads nothing for this long is disconnected rather than buffered for.'),
  datasetChunkBytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(DEFAULTS.datasetChunkBytes),
});

const auditSchema = z.strictObject({
  sink: z.enum(['stderr', 'file']).default('stderr'),
  path: z
    .string()
    .min(1)
    .optional()
    .describe('Audit file (append-only); relative paths are resolved against the config file.'),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

const resourcesSchema = z.strictObject({
  pageSize: positiveInt.max(1000).default(DEFAULTS.resourcePageSize),
  watch: z.boolean().default(true).describe('Watch roots for changes while a client listens for resource updates.'),
  watchDebounceMs: z.number().int().min(0).default(DEFAULTS.watchDebounceMs),
});

const shutdownSchema = z.strictObject({
  gracePeriodMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.shutdownGraceMs)
    .describe('How long in-flight requests may run after SIGTERM/SIGINT before they are cancelled.'),
});

const metricsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z
    .string()
    .regex(/^\/[\w./-]*$/, 'an absolute URL path')
    .default('/metrics'),
  port: port
    .optional()
    .describe(
      'Serve metrics on this port alone, unauthenticated (for Prometheus). Without it they are served on the main port, ' +
        'behind the same authentication as /mcp.',
    ),
  host: z.string().min(1).optional().describe('Bind address of the metrics port; server.host when omitted.'),
});

const tracingSchema = z.strictObject({
  enabled: z.boolean().default(false),
  endpoint: z
    .url({ protocol: /^https?$/ })
    .default('http://127.0.0.1:4318/v1/traces')
    .describe('OTLP/HTTP traces endpoint.'),
  sampleRatio: z
    .number()
    .min(0)
    .max(1)
    .default(1)
    .describe('Share of new traces sampled; a parent decision is always followed.'),
  serviceName: z.string().min(1).default('mcpd'),
});

const reloadSchema = z.strictObject({
  watchConfig: z.boolean().default(false).describe('Reload when the config file changes, as on SIGHUP.'),
  debounceMs: z.number().int().min(0).default(DEFAULTS.reloadDebounceMs),
});

export const configSchema = z
  .strictObject({
    $schema: z.string().optional(),
    server: serverSchema.prefault({}),
    auth: authSchema.default({ mode: 'none' }),
    grants: z
      .array(grantSchema)
      .optional()
      .describe(
        `Who may do what on which root. Without grants: everyone authenticated may read with ${DEFAULT_SCOPES.read} and ` +
          `read and write with ${DEFAULT_SCOPES.write} (and, with auth.mode none, the local caller may do everything the roots allow).`,
      ),
    accessPolicy: accessPolicySchema.prefault({}),
    roots: z.array(rootSchema).min(1, 'at least one root is required'),
    limits: limitsSchema.prefault({}),
    audit: auditSchema.prefault({}),
    log: logSchema.prefault({}),
    resources: resourcesSchema.prefault({}),
    shutdown: shutdownSchema.prefault({}),
    reload: reloadSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    tracing: tracingSchema.prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.roots.forEach((root, index) => {
      const first = seen.get(root.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['roots', index, 'name'],
          message: `duplicate root name (also roots[${first}].name)`,
        });
      }
      seen.set(root.name, index);
    });
    if (config.audit.sink === 'file' && !config.audit.path) {
      ctx.addIssue({ code: 'custom', path: ['audit', 'path'], message: 'required when audit.sink is "file"' });
    }
    if (config.auth.mode === 'jwt' && config.server.publicUrl === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'publicUrl'],
        message: 'required with auth.mode jwt: the URL clients use for /mcp, which tokens must name as their audience',
      });
    }
    if (config.server.headersTimeoutMs <= config.server.keepAliveTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'headersTimeoutMs'],
        message: 'must be above server.keepAliveTimeoutMs, or Node may cut a reused connection mid-request',
      });
    }
    if (config.auth.mode === 'apiKeys') {
      const seen = new Map<string, number>();
      config.auth.apiKeys.forEach((key, index) => {
        const hash = key.sha256?.toLowerCase();
        if (hash === undefined) return;
        const first = seen.get(hash);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['auth', 'apiKeys', index, 'sha256'],
            message: `the same key as auth.apiKeys[${first}]; each key must name one principal`,
          });
        }
        seen.set(hash, index);
      });
    }
    if (config.auth.mode === 'none' && !isLoopbackHost(config.server.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'host'],
        message: `refusing to bind a non-loopback address without authentication (auth.mode is "none"); bind 127.0.0.1 or put mcpd behind an authenticating proxy on loopback`,
      });
    }
    const rootNames = new Set(config.roots.map((root) => root.name));
    config.grants?.forEach((grant, index) => {
      grant.roots.forEach((name, rootIndex) => {
        if (name !== '*' && !rootNames.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['grants', index, 'roots', rootIndex],
            message: 'no root has this name',
          });
        }
      });
    });
    if (config.limits.listPageSize > config.limits.maxListPageSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'listPageSize'],
        message: 'must not exceed limits.maxListPageSize',
      });
    }
  });

/** The config as written (what editors complete). */
export type ConfigInput = z.input<typeof configSchema>;
/** The config after defaults, before roots are resolved against the file system. */
export type ParsedConfig = z.output<typeof configSchema>;

export interface RootConfig {
  readonly name: string;
  readonly description: string;
  /** The root as clients see it: a file:// URI without a trailing slash. */
  readonly uri: string;
  /** Absolute host path the URI denotes (not yet canonicalised). */
  readonly path: string;
  readonly read: readonly string[];
  readonly write: readonly string[];
  /** Whether a regular file with more than one hard link may be read. */
  readonly hardLinks: 'refuse' | 'allow';
}

export interface ApiKey {
  readonly principal: string;
  /** Lowercase hex SHA-256 of the key. */
  readonly sha256: string;
  readonly scopes: readonly string[];
}

export type JwtSettings = Omit<z.output<typeof jwtSchema>, 'jwksFile' | 'audience' | 'authorizationServers'> & {
  /** The JWKS document when it came from a file; null when keys are fetched from jwksUrl. */
  readonly jwks: { readonly keys: readonly Record<string, unknown>[] } | null;
  readonly audience: string;
  readonly authorizationServers: readonly string[];
};

/** Authentication with every secret source resolved (files read, variables looked up). */
export type AuthConfig =
  | { readonly mode: 'none' }
  | { readonly mode: 'apiKeys'; readonly apiKeys: readonly ApiKey[] }
  | { readonly mode: 'jwt'; readonly jwt: JwtSettings };

export interface Grant {
  readonly principals: readonly string[];
  readonly scopes: readonly string[];
  readonly roots: readonly string[];
  readonly access: readonly ('read' | 'write')[];
}

/** The resolved, frozen configuration the rest of mcpd runs on. */
export interface Config {
  /** Absolute path of the file this came from. */
  readonly source: string;
  readonly server: Omit<ParsedConfig['server'], 'tls' | 'publicUrl'> & {
    /** The canonical URL of the /mcp endpoint (resource identifier, JWT audience). */
    readonly publicUrl: string;
    /** PEM material, read from the configured files. */
    readonly tls: { readonly cert: string; readonly key: string } | null;
  };
  readonly auth: AuthConfig;
  /** Explicit grants, or null for the defaults (see DEFAULT_SCOPES). */
  readonly grants: readonly Grant[] | null;
  readonly accessPolicy: { readonly read: readonly string[]; readonly write: readonly string[] };
  /** Built-in plus configured excludes, deduplicated; always wins. */
  readonly exclude: readonly string[];
  readonly roots: readonly RootConfig[];
  readonly limits: ParsedConfig['limits'];
  readonly audit: { readonly sink: 'stderr' | 'file'; readonly path: string | null };
  readonly log: ParsedConfig['log'];
  readonly resources: ParsedConfig['resources'];
  readonly shutdown: ParsedConfig['shutdown'];
  readonly reload: ParsedConfig['reload'];
  readonly metrics: ParsedConfig['metrics'];
  readonly tracing: ParsedConfig['tracing'];
}
