import { AuditedDatabases, DatabaseEngines } from './access/databases.js';
import { AuditedFiles } from './access/files.js';
import { AccessGate, type GateObservers } from './access/gate.js';
import type { AuditLog } from './audit/log.js';
import { type Authenticator, createAuthenticator } from './auth/index.js';
import type { BusChange } from './cluster/changeBus.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { FileSystemWorkers } from './fs/fsWorkers.js';
import { DirectoryListings } from './fs/listing.js';
import { NameIndex } from './fs/nameIndex.js';
import { RegexPool } from './fs/regex.js';
import { NodePathResolver } from './fs/resolver.js';
import { canonicalizeRoots } from './fs/roots.js';
import type { McpServices } from './mcp/scope.js';
import { PolicyEngine } from './policy/engine.js';
import { effectiveGrants, GrantTable } from './policy/grants.js';

/** How long a cached listing that holds symlinks is trusted: a link's target changes without its directory. */
const LINK_SNAPSHOT_TTL_MS = 2000;

/** Everything a request runs under; built whole from one config and swapped whole on reload. */
export interface Runtime extends McpServices {
  readonly authenticator: Authenticator;
}

/**
 * Builds what requests run under from a validated config: canonical roots, the grants, the policy
 * engine, the audited gate and the authenticator. Roots that do not exist are configuration
 * errors, named by their key.
 */
/** What outlives reloads: made once per process and handed to every runtime built from a config. */
export interface RuntimeShared {
  readonly observers?: GateObservers;
  /** grep's regex workers; a runtime built without them gets a pool that starts workers only on use. */
  readonly regexes?: RegexPool;
  /** Workers that read directories, stat listing pages, resolve paths and read small files off the event loop. */
  readonly fsWorkers?: FileSystemWorkers;
  /** The database engines (a worker and a copy of the file each), kept across reloads. */
  readonly databaseEngines?: DatabaseEngines;
  /** Told of every change made through mcpd (the change feed, which tells listeners on every replica). */
  readonly onChanged?: (change: BusChange) => void;
}

/** Regex workers per process: one per core of the machines mcpd is sized for. */
export const GREP_WORKERS = 2;

/**
 * File-system workers per process: one per core. A walk keeps one busy while the main thread
 * filters what the other read; path and small-file requests that find both busy travel together.
 */
export const FS_WORKERS = 2;

export async function buildRuntime(config: Config, audit: AuditLog, shared: RuntimeShared = {}): Promise<Runtime> {
  const { roots, problems } = await canonicalizeRoots(config.roots);
  if (problems.length > 0) {
    throw new ConfigError(
      problems.map((problem) => ({
        key: `roots[${problem.index}].uri`,
        message: `${problem.message} (got ${JSON.stringify(config.roots[problem.index]?.uri)})`,
      })),
      config.source,
    );
  }
  const { readers, stats, syscalls } = shared.fsWorkers ?? new FileSystemWorkers(FS_WORKERS);
  const policy = new PolicyEngine({
    roots,
    exclude: config.exclude,
    resolver: new NodePathResolver(syscalls),
    grants: new GrantTable(effectiveGrants(config.grants, config.auth)),
  });
  const listings = new DirectoryListings(policy, {
    maxEntries: config.limits.maxDirectoryEntries,
    maxCachedEntries: config.limits.listingCacheEntries,
    linkTtlMs: LINK_SNAPSHOT_TTL_MS,
    readers,
  });
  const { searchIndexMaxEntries, searchIndexTtlMs } = config.limits;
  const index =
    searchIndexMaxEntries > 0
      ? new NameIndex(listings, readers, policy, { maxEntries: searchIndexMaxEntries, ttlMs: searchIndexTtlMs })
      : undefined;
  const gate = new AccessGate(policy, audit, shared.observers);
  const authenticator = await createAuthenticator(config.auth);
  // Last, once nothing else can fail: a reload that fails keeps the engines the running config uses.
  const engines = shared.databaseEngines ?? new DatabaseEngines();
  await engines.retain(config.databases);
  return {
    config,
    gate,
    files: new AuditedFiles(gate, {
      listings,
      regexes: shared.regexes ?? new RegexPool(GREP_WORKERS),
      stats,
      syscalls,
      ...(shared.onChanged ? { onChanged: shared.onChanged } : {}),
      ...(index ? { index } : {}),
    }),
    databases: new AuditedDatabases(config.databases, policy.grants, gate, engines),
    authenticator,
  };
}
