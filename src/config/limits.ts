import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { positiveInt } from './fields.js';

/** The `limits` section: how much one call, one principal and the whole process may take. */

export const limitsSchema = z.strictObject({
  maxReadBytes: positiveInt
    .default(DEFAULTS.maxReadBytes)
    .describe('Largest single `read_file` or `resources/read` answer.'),
  maxBatchBytes: positiveInt
    .default(DEFAULTS.maxBatchBytes)
    .describe('Total bytes of one `read_multiple_files` answer.'),
  maxResultBytes: positiveInt
    .default(DEFAULTS.maxResultBytes)
    .describe(
      'Largest tool result (serialised JSON); a bigger one becomes a TOO_LARGE error asking to narrow the request.',
    ),
  maxBatchFiles: positiveInt
    .max(1000)
    .default(DEFAULTS.maxBatchFiles)
    .describe('Paths per `read_multiple_files` call.'),
  maxWriteBytes: positiveInt
    .default(DEFAULTS.maxWriteBytes)
    .describe('Largest `write_file` content, and largest file `edit_file` edits.'),
  listPageSize: positiveInt
    .default(DEFAULTS.listPageSize)
    .describe('Default `list_directory` page; at most `maxListPageSize`.'),
  maxListPageSize: positiveInt.default(DEFAULTS.maxListPageSize).describe("Upper bound of `list_directory`'s `limit`."),
  treeMaxDepth: positiveInt.max(64).default(DEFAULTS.treeMaxDepth).describe('Default `directory_tree` depth.'),
  treeMaxEntries: positiveInt.default(DEFAULTS.treeMaxEntries).describe('Default `directory_tree` entry budget.'),
  treeHardMaxEntries: positiveInt
    .default(DEFAULTS.treeHardMaxEntries)
    .describe("Upper bound of `directory_tree`'s `maxEntries`."),
  searchMaxResults: positiveInt.default(DEFAULTS.searchMaxResults).describe('Default `search_files` page size.'),
  searchHardMaxResults: positiveInt
    .default(DEFAULTS.searchHardMaxResults)
    .describe("Upper bound of `search_files`'s `limit`."),
  grepMaxMatches: positiveInt.default(DEFAULTS.grepMaxMatches).describe('Default `grep` match limit.'),
  grepHardMaxMatches: positiveInt
    .default(DEFAULTS.grepHardMaxMatches)
    .describe("Upper bound of `grep`'s `maxMatches`."),
  grepMaxFileBytes: positiveInt
    .default(DEFAULTS.grepMaxFileBytes)
    .describe('`grep` skips larger files and counts them in `skippedTooLarge`.'),
  walkMaxEntries: positiveInt
    .default(DEFAULTS.walkMaxEntries)
    .describe('Entries one `search_files`, `grep` or `resources/list` call may visit.'),
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
  listingCacheEntries: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.listingCacheEntries)
    .describe(
      'Entries of directory listings kept in memory across calls (least recently used go first); ' +
        '0 reads every directory afresh on every call.',
    ),
  searchIndexMaxEntries: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.searchIndexMaxEntries)
    .describe(
      'Visible entries of a root that search_files may keep in a name index (about 85 bytes each) and scan ' +
        'instead of walking; a bigger root is walked; 0 turns the index off.',
    ),
  searchIndexTtlMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.searchIndexTtlMs)
    .describe(
      "How long a search index is used before its directories are checked again: a change made behind mcpd's " +
        'back is seen by search_files within this bound (changes made through mcpd at once).',
    ),
  maxConcurrentRequests: positiveInt
    .default(DEFAULTS.maxConcurrentRequests)
    .describe('MCP requests served at once by this process; more get 429 with Retry-After.'),
  maxConcurrentPerPrincipal: positiveInt
    .default(DEFAULTS.maxConcurrentPerPrincipal)
    .describe('MCP requests served at once for one principal; more get 429 with Retry-After.'),
  rateLimit: z
    .strictObject({
      perSecond: z
        .number()
        .positive()
        .default(DEFAULTS.ratePerSecond)
        .describe('Requests per second the bucket refills.'),
      burst: positiveInt.default(DEFAULTS.rateBurst).describe('Size of the bucket.'),
    })
    .prefault({})
    .describe('Token bucket per principal: sustained requests per second and the burst above it.'),
  authFailures: z
    .strictObject({
      perSecond: z
        .number()
        .positive()
        .default(DEFAULTS.authFailuresPerSecond)
        .describe('Failed authentications per second the bucket refills.'),
      burst: positiveInt.default(DEFAULTS.authFailuresBurst).describe('Size of the bucket.'),
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
    .default(DEFAULTS.datasetChunkBytes)
    .describe('Default chunk size of `process_large_dataset`.'),
});
