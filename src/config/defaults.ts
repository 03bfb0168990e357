/**
 * Every default of the configuration, by name, and nowhere else: the section schemas take their
 * defaults from here, and so does the code that needs one outside the schema.
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

/**
 * Database excludes that apply whatever the file says, matched case-insensitively against table
 * names, column names and `table.column`: a credential column is never readable by omission.
 */
export const BUILTIN_DATABASE_EXCLUDES = [
  '*password*',
  '*passwd*',
  '*secret*',
  '*token*',
  '*api_key*',
  '*apikey*',
  '*private_key*',
  '*credential*',
  'sqlite_*',
] as const;

export const DATABASE_DEFAULTS = {
  maxRows: 500,
  maxResultBytes: 256 * 1024,
  statementTimeoutMs: 5000,
  /** A SQLite file is held in memory while it is read: bigger ones are refused. */
  maxFileBytes: 256 * 1024 * 1024,
  /** The memory one SQLite database may use in its worker: the file, plus what a statement builds. */
  maxMemoryBytes: 512 * 1024 * 1024,
} as const;

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
  /** Entries of a root's search name index (about 85 bytes each): bigger roots are walked. */
  searchIndexMaxEntries: 500_000,
  /** How long a search index is trusted before its directories are checked again (the staleness bound). */
  searchIndexTtlMs: 2000,
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
  redisKeyPrefix: 'mcpd:',
  /** Connecting to Redis on a local network takes milliseconds; two seconds means it is not there. */
  redisConnectTimeoutMs: 2000,
  /** A limiter's Redis call is on every request's path: past this it counts as failed. */
  redisCommandTimeoutMs: 500,
  /** A dead replica's quota slots are free again within this time; live replicas renew theirs at a third of it. */
  clusterLeaseMs: 15_000,
  /** A task's result waits an hour for its client to come back for it. */
  taskTtlMs: 3_600_000,
} as const;

/** Scopes that grant access when no `grants` are configured. */
export const DEFAULT_SCOPES = { read: 'mcpd:read', write: 'mcpd:write' } as const;
