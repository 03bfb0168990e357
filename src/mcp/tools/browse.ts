import * as z from 'zod';
import { callerGlob, compilePattern, nameMatcher } from '../../access/patterns.js';
import { defineTool, READ_ONLY } from '../toolkit.js';
import { cursorArg, decodeCursor, encodeCursor, entryType, pathArg, rootArg } from './common.js';
import { listingLines, pathsByRoot, shown, text, treeLines } from './render.js';

const clamp = (value: number, min: number, max: number) => Math.min(Math.max(value, min), max);

const listedEntry = z.object({
  name: z.string().describe("The entry's path is the listing's path joined with its name, its URI likewise."),
  type: entryType,
  size: z.number().optional().describe('Bytes (files; 0 otherwise). With details only.'),
  modified: z.string().optional().describe('Last modification, ISO 8601. With details only.'),
  symlink: z.literal(true).optional(),
});

export const listDirectory = defineTool({
  name: 'list_directory',
  title: 'List directory',
  description:
    'List the entries of a directory inside a root, sorted by name, with their type; with details, also size ' +
    'and modification time. Excluded and unreadable entries are not shown. Paginated: pass nextCursor back ' +
    'to get the next page.',
  input: z.object({
    path: pathArg.default('').describe('Directory to list; the root itself when empty.'),
    root: rootArg,
    limit: z.number().int().positive().optional().describe('Entries per page (server default and maximum apply).'),
    cursor: cursorArg,
    details: z
      .boolean()
      .optional()
      .describe('Also give each entry its size and modification time (one stat per entry; default false).'),
  }),
  output: z.object({
    uri: z.string(),
    path: z.string().describe("The directory's root-relative path ('' for the root)."),
    entries: z.array(listedEntry),
    total: z.number().describe('Visible entries in the directory.'),
    nextCursor: z.string().optional(),
  }),
  render: listingLines,
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root, limit, cursor, details }, ctx) {
    const pageSize = clamp(limit ?? ctx.config.limits.listPageSize, 1, ctx.config.limits.maxListPageSize);
    const after = cursor ? decodeCursor('ls', cursor, z.object({ after: z.string() })).after : undefined;
    const page = await ctx.files.list(
      ctx.caller,
      { path, root },
      { after, limit: pageSize, details: details === true },
    );
    return {
      uri: page.uri,
      path: page.path,
      entries: page.entries,
      total: page.total,
      ...(page.last === undefined ? {} : { nextCursor: encodeCursor('ls', { after: page.last }) }),
    };
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
  render: treeLines,
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root, maxDepth, maxEntries }, ctx) {
    const { limits } = ctx.config;
    const result = await ctx.files.tree(
      ctx.caller,
      { path, root },
      {
        maxDepth: clamp(maxDepth ?? limits.treeMaxDepth, 1, 64),
        maxEntries: clamp(maxEntries ?? limits.treeMaxEntries, 1, limits.treeHardMaxEntries),
      },
    );
    const truncatedBy = [
      ...(result.truncatedByDepth ? (['depth'] as const) : []),
      ...(result.truncatedByEntries ? (['entries'] as const) : []),
    ];
    return {
      uri: result.uri,
      tree: result.tree,
      entries: result.entries,
      truncated: truncatedBy.length > 0,
      truncatedBy,
    };
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
    return ctx.files.stat(ctx.caller, { path, root });
  },
});

const searchCursor = z.object({ start: z.number().int().min(0), after: z.string() });

export const searchFiles = defineTool({
  name: 'search_files',
  title: 'Search files',
  description:
    'Find files and directories by name across roots. A pattern with glob characters (* ? [ ] { }) is a glob: ' +
    'without "/" it matches names at any depth, with "/" it matches root-relative paths. Any other pattern is a ' +
    'case-insensitive substring of the name. Paginated with limit and cursor. Repeated searches are served ' +
    "from a name index: changes made through this server show at once, changes made behind the server's " +
    'back within a couple of seconds (limits.searchIndexTtlMs).',
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
  render: (value) =>
    text([
      `${value.matches.length} matches${value.truncated ? ' (the walk stopped at its entry budget)' : ''}`,
      ...pathsByRoot(value.matches, (match) => shown(match.path, match.type)),
      ...(value.nextCursor === undefined ? [] : [`more: pass cursor "${value.nextCursor}"`]),
    ]),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ pattern, root, path, limit, cursor }, ctx) {
    const { limits } = ctx.config;
    const resume = cursor ? decodeCursor('search', cursor, searchCursor) : undefined;
    const matches = nameMatcher(pattern);
    const result = await ctx.files.search(ctx.caller, { path, root }, matches, {
      limit: clamp(limit ?? limits.searchMaxResults, 1, limits.searchHardMaxResults),
      resume,
      maxEntries: limits.walkMaxEntries,
    });
    return {
      matches: result.matches.map((e) => ({
        uri: e.uri,
        root: e.root.name,
        path: e.relPath,
        name: e.name,
        type: e.type,
      })),
      ...(result.next ? { nextCursor: encodeCursor('search', { ...result.next }) } : {}),
      truncated: result.truncated,
    };
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
  render: (value) =>
    text([
      `${value.matches.length} matching lines in ${value.filesScanned} files scanned` +
        (value.skippedBinary + value.skippedTooLarge > 0
          ? ` (${value.skippedBinary} binary and ${value.skippedTooLarge} too large skipped)`
          : '') +
        (value.truncated ? '; cut short' : ''),
      ...pathsByRoot(value.matches, (match) => `${match.path}:${match.line}: ${match.text}`),
    ]),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ pattern, caseInsensitive, root, path, include, maxMatches }, ctx) {
    const { limits } = ctx.config;
    const compiled = compilePattern(pattern, caseInsensitive);
    const includes = include === undefined ? undefined : callerGlob(include, false);
    const result = await ctx.files.grep(
      ctx.caller,
      { path, root },
      {
        pattern: compiled,
        include: includes,
        maxMatches: clamp(maxMatches ?? limits.grepMaxMatches, 1, limits.grepHardMaxMatches),
        maxFileBytes: limits.grepMaxFileBytes,
        timeoutMsPerFile: GREP_TIMEOUT_PER_FILE_MS,
        maxEntries: limits.walkMaxEntries,
      },
    );
    return {
      matches: result.matches,
      filesScanned: result.filesScanned,
      skippedBinary: result.skippedBinary,
      skippedTooLarge: result.skippedLarge,
      truncated: result.truncated,
    };
  },
});
