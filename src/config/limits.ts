import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { positiveInt } from './fields.js';

/** The `limits` section: how much one call, one principal and the whole process may take. */

export const limitsSchema = z.strictObject({
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
