import * as z from 'zod';
import type { PathRequest } from '../../access/gate.js';
import { McpdError, notFoundOrDenied } from '../../errors.js';
import { statTarget } from '../../fs/files.js';
import { indexAfter } from '../../fs/listing.js';
import { compilePattern } from '../../fs/regex.js';
import { callerGlob, grep, nameMatcher, searchNames, tree } from '../../fs/search.js';
import { detail, WalkBudget } from '../../fs/walk.js';
import type { Target } from '../../policy/types.js';
import { defineTool, READ_ONLY, type ToolContext } from '../toolkit.js';
import { cursorArg, decodeCursor, encodeCursor, entryType, pathArg, rootArg } from './common.js';

const clamp = (value: number, min: number, max: number) => Math.min(Math.max(value, min), max);

function requireDirectory(target: Target): void {
  if (target.kind === 'missing') throw notFoundOrDenied(target.display);
  if (target.kind !== 'directory') throw new McpdError('NOT_A_DIRECTORY', `${target.display} is not a directory`);
}

/** Where a search starts: one directory when `path` is given, else every root (or the one named). */
function searchStarts(ctx: ToolContext, path: string | undefined, root: string | undefined): PathRequest[] {
  if (path !== undefined) return [{ op: 'list', path, root }];
  const roots =
    root === undefined ? ctx.gate.policy.roots : ctx.gate.policy.roots.filter((r) => r.name === root || r.uri === root);
  if (roots.length === 0) throw new McpdError('INVALID_ARGUMENT', 'no root has that name or URI');
  return roots.map((r) => ({ op: 'list', path: r.uri }));
}

const listedEntry = z.object({
  name: z.string(),
  path: z.string().describe('Root-relative path.'),
  uri: z.string(),
  type: entryType,
  size: z.number(),
  modified: z.string(),
  symlink: z.literal(true).optional(),
});

export const listDirectory = defineTool({
  name: 'list_directory',
  title: 'List directory',
  description:
    'List the entries of a directory inside a root, sorted by name, with type, size and modification time. ' +
    'Excluded and unreadable entries are not shown. Paginated: pass nextCursor back to get the next page.',
  input: z.object({
    path: pathArg.default('').describe('Directory to list; the root itself when empty.'),
    root: rootArg,
    limit: z.number().int().positive().optional().describe('Entries per page (server default and maximum apply).'),
    cursor: cursorArg,
  }),
  output: z.object({
    uri: z.string(),
    entries: z.array(listedEntry),
    total: z.number().describe('Visible entries in the directory.'),
    nextCursor: z.string().optional(),
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root, limit, cursor }, ctx) {
    const pageSize = clamp(limit ?? ctx.config.limits.listPageSize, 1, ctx.config.limits.maxListPageSize);
    const after = cursor ? decodeCursor('ls', cursor, z.object({ after: z.string() })).after : undefined;
    const structured = await ctx.gate.access(ctx.caller, { op: 'list', path, root }, async (target) => {
      requireDirectory(target);
      // One shared snapshot of the directory; this call holds only its page (found by binary search).
      const listing = await ctx.gate.viewer(ctx.caller).listings.open(target);
      try {
        const { names } = listing.snapshot;
        const start = after === undefined ? 0 : indexAfter(listing.snapshot, after);
        const end = Math.min(names.length, start + pageSize);
        const indexes = Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
        const entries = await Promise.all(indexes.map((index) => detail(listing, index)));
        const last = names[end - 1];
        return {
          value: {
            uri: target.uri,
            entries,
            total: names.length,
            ...(end < names.length && last !== undefined ? { nextCursor: encodeCursor('ls', { after: last }) } : {}),
          },
        };
      } finally {
        await listing.close();
      }
    });
    return structured;
  },
});

type TreeNodeShape = {
  name: string;
  type: 'file' | 'directory' | 'other';
  children?: TreeNodeShape[];
  truncated?: true;
};
const treeNode: z.ZodType<TreeNodeShape> = z.lazy(() =>
  z.object({
    name: z.string(),
    type: entryType,
    children: z.array(treeNode).optional(),
    truncated: z.literal(true).optional().describe('Has children below the depth limit that were not listed.'),
  }),
);

export const directoryTree = defineTool({
  name: 'directory_tree',
  title: 'Directory tree',
  description:
    'A recursive tree of a directory, bounded by depth and by entry count; says when either bound cut it short. ' +
    'Symbolic links to directories are shown but not entered.',
  input: z.object({
    path: pathArg.default(''),
    root: rootArg,
    maxDepth: z.number().int().positive().optional().describe('Levels below the directory (default 3).'),
    maxEntries: z.number().int().positive().optional().describe('Entries in the whole tree (default 500).'),
  }),
  output: z.object({
    uri: z.string(),
    tree: z.array(treeNode),
    entries: z.number(),
    truncated: z.boolean(),
    truncatedBy: z.array(z.enum(['depth', 'entries'])),
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root, maxDepth, maxEntries }, ctx) {
    const { limits } = ctx.config;
    const structured = await ctx.gate.access(ctx.caller, { op: 'list', path, root }, async (target) => {
      requireDirectory(target);
      const result = await tree(ctx.gate.viewer(ctx.caller), target, {
        maxDepth: clamp(maxDepth ?? limits.treeMaxDepth, 1, 64),
        maxEntries: clamp(maxEntries ?? limits.treeMaxEntries, 1, limits.treeHardMaxEntries),
        signal: ctx.signal,
      });
      const truncatedBy = [
        ...(result.truncatedByDepth ? (['depth'] as const) : []),
        ...(result.truncatedByEntries ? (['entries'] as const) : []),
      ];
      return {
        value: {
          uri: target.uri,
          tree: result.tree,
          entries: result.entries,
          truncated: truncatedBy.length > 0,
          truncatedBy,
        },
      };
    });
    return structured;
  },
});

export const getFileInfo = defineTool({
  name: 'get_file_info',
  title: 'File info',
  description:
    'Metadata of a file or directory: type, size, times, permissions, MIME type and the ETag to pass to ' +
    'write_file or edit_file as expectedEtag.',
  input: z.object({ path: pathArg, root: rootArg }),
  output: z.object({
    uri: z.string(),
    root: z.string(),
    path: z.string(),
    type: entryType,
    size: z.number(),
    modified: z.string(),
    created: z.string(),
    permissions: z.string(),
    etag: z.string(),
    mimeType: z.string().nullable(),
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root }, ctx) {
    const structured = await ctx.gate.access(ctx.caller, { op: 'read', path, root }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      return { value: await statTarget(target) };
    });
    return structured;
  },
});

const searchCursor = z.object({ start: z.number().int().min(0), after: z.string() });

export const searchFiles = defineTool({
  name: 'search_files',
  title: 'Search files',
  description:
    'Find files and directories by name across roots. A pattern with glob characters (* ? [ ] { }) is a glob: ' +
    'without "/" it matches names at any depth, with "/" it matches root-relative paths. Any other pattern is a ' +
    'case-insensitive substring of the name. Paginated with limit and cursor.',
  input: z.object({
    pattern: z.string().min(1).max(1000),
    root: rootArg.describe('Search only this root (name or URI).'),
    path: pathArg.optional().describe('Search only under this directory.'),
    limit: z.number().int().positive().optional(),
    cursor: cursorArg,
  }),
  output: z.object({
    matches: z.array(
      z.object({ uri: z.string(), root: z.string(), path: z.string(), name: z.string(), type: entryType }),
    ),
    nextCursor: z.string().optional(),
    truncated: z.boolean().describe('True when the walk hit its entry budget before finishing.'),
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ pattern, root, path, limit, cursor }, ctx) {
    const { limits } = ctx.config;
    const resume = cursor ? decodeCursor('search', cursor, searchCursor) : undefined;
    const matches = nameMatcher(pattern);
    const budget = new WalkBudget(limits.walkMaxEntries);
    const structured = await ctx.gate.accessEach(ctx.caller, searchStarts(ctx, path, root), async (starts) => {
      for (const start of starts) requireDirectory(start);
      const result = await searchNames(ctx.gate.viewer(ctx.caller), starts, matches, {
        limit: clamp(limit ?? limits.searchMaxResults, 1, limits.searchHardMaxResults),
        resume,
        budget,
        signal: ctx.signal,
      });
      return {
        value: {
          matches: result.matches.map((e) => ({
            uri: e.uri,
            root: e.root.name,
            path: e.relPath,
            name: e.name,
            type: e.type,
          })),
          ...(result.next ? { nextCursor: encodeCursor('search', { ...result.next }) } : {}),
          truncated: budget.truncated,
        },
      };
    });
    return structured;
  },
});

/** How long one file may keep the regex busy before the pattern is declared too slow. */
const GREP_TIMEOUT_PER_FILE_MS = 2000;

export const grepTool = defineTool({
  name: 'grep',
  title: 'Search file contents',
  description:
    'Search the contents of readable text files with a JavaScript regular expression; returns matching lines ' +
    'with their line numbers. Binary files and files above the size limit are skipped and counted. Bounded by ' +
    'maxMatches and by the number of entries walked.',
  input: z.object({
    pattern: z.string().min(1).max(1000).describe('JavaScript regular expression, without slashes.'),
    caseInsensitive: z.boolean().default(false),
    root: rootArg.describe('Search only this root (name or URI).'),
    path: pathArg.optional().describe('Search only under this directory.'),
    include: z.string().max(1000).optional().describe('Only files matching this glob (e.g. "*.md").'),
    maxMatches: z.number().int().positive().optional(),
  }),
  output: z.object({
    matches: z.array(
      z.object({ uri: z.string(), root: z.string(), path: z.string(), line: z.number(), text: z.string() }),
    ),
    filesScanned: z.number(),
    skippedBinary: z.number(),
    skippedTooLarge: z.number(),
    truncated: z.boolean().describe('True when maxMatches or the walk budget cut the search short.'),
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ pattern, caseInsensitive, root, path, include, maxMatches }, ctx) {
    const { limits } = ctx.config;
    const compiled = compilePattern(pattern, caseInsensitive);
    const includes = include === undefined ? undefined : callerGlob(include, false);
    const budget = new WalkBudget(limits.walkMaxEntries);
    const structured = await ctx.gate.accessEach(ctx.caller, searchStarts(ctx, path, root), async (starts) => {
      for (const start of starts) requireDirectory(start);
      const result = await grep(ctx.gate.viewer(ctx.caller), starts, {
        pattern: compiled,
        ...(includes ? { include: includes } : {}),
        maxMatches: clamp(maxMatches ?? limits.grepMaxMatches, 1, limits.grepHardMaxMatches),
        maxFileBytes: limits.grepMaxFileBytes,
        timeoutMsPerFile: GREP_TIMEOUT_PER_FILE_MS,
        budget,
        signal: ctx.signal,
      });
      return {
        value: {
          matches: result.matches,
          filesScanned: result.filesScanned,
          skippedBinary: result.skippedBinary,
          skippedTooLarge: result.skippedLarge,
          truncated: result.limited || budget.truncated,
        },
      };
    });
    return structured;
  },
});
