import picomatch from 'picomatch';
import * as z from 'zod';

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
  datasetChunkBytes: 64 * 1024,
  resourcePageSize: 100,
  /** Collapse bursts of file-system events for one file into one notification. */
  watchDebounceMs: 100,
  /** Below Kubernetes' default 30 s termination grace, so we finish before SIGKILL. */
  shutdownGraceMs: 25_000,
} as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127(\.\d{1,3}){3}$/.test(host);
}

function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'a glob must not be empty';
  if (pattern.includes('\0')) return 'a glob must not contain a NUL byte';
  if (pattern.startsWith('/')) return 'globs are relative to the root; remove the leading "/"';
  if (pattern.split('/').includes('..')) return 'globs must not contain ".." segments';
  try {
    picomatch.makeRe(pattern);
  } catch (error) {
    return `not a valid glob (${(error as Error).message})`;
  }
  return undefined;
}

const glob = z.string().superRefine((pattern, ctx) => {
  const problem = globProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const globList = z.array(glob);

const port = z.number().int().min(0).max(65_535);
const positiveInt = z.number().int().positive();

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
});

const authSchema = z.strictObject({
  mode: z.literal('none').default('none').describe('Only "none" (loopback only) until authentication lands.'),
});

const accessPolicySchema = z.strictObject({
  read: globList
    .default(['*.md', '*.markdown', '*.txt', '*.json', '*.jsonl', '*.yaml', '*.yml', '*.csv'])
    .describe('Default read globs for roots that do not set their own.'),
  write: globList.default([]).describe('Default write globs for roots that do not set their own.'),
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

export const configSchema = z
  .strictObject({
    $schema: z.string().optional(),
    server: serverSchema.prefault({}),
    auth: authSchema.prefault({}),
    accessPolicy: accessPolicySchema.prefault({}),
    roots: z.array(rootSchema).min(1, 'at least one root is required'),
    limits: limitsSchema.prefault({}),
    audit: auditSchema.prefault({}),
    log: logSchema.prefault({}),
    resources: resourcesSchema.prefault({}),
    shutdown: shutdownSchema.prefault({}),
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
    if (config.auth.mode === 'none' && !isLoopbackHost(config.server.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'host'],
        message: `refusing to bind a non-loopback address without authentication (auth.mode is "none"); bind 127.0.0.1 or put mcpd behind an authenticating proxy on loopback`,
      });
    }
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
}

/** The resolved, frozen configuration the rest of mcpd runs on. */
export interface Config {
  /** Absolute path of the file this came from. */
  readonly source: string;
  readonly server: ParsedConfig['server'];
  readonly auth: ParsedConfig['auth'];
  readonly accessPolicy: { readonly read: readonly string[]; readonly write: readonly string[] };
  /** Built-in plus configured excludes, deduplicated; always wins. */
  readonly exclude: readonly string[];
  readonly roots: readonly RootConfig[];
  readonly limits: ParsedConfig['limits'];
  readonly audit: { readonly sink: 'stderr' | 'file'; readonly path: string | null };
  readonly log: ParsedConfig['log'];
  readonly resources: ParsedConfig['resources'];
  readonly shutdown: ParsedConfig['shutdown'];
}
