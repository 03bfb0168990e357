import { McpdError } from '../errors.js';
import { CALLER_GLOB_LIMITS, type Glob, GlobSyntaxError, parseGlob } from '../globs.js';
import type { Target } from '../policy/types.js';
import { looksBinary, readAt } from './files.js';
import type { Candidate } from './nameIndex.js';
import { openRegularFile } from './open.js';
import type { LineMatch } from './regex.js';
import { type Entry, hasVisibleEntries, type Viewer, WalkBudget, walk } from './walk.js';

/** Where a paginated multi-root walk stopped: which start, and the last path returned there. */
export interface ResumePoint {
  readonly start: number;
  readonly after: string;
}

const GLOB_CHARS = /[*?[\]{}!]/;

/** A name query: a glob when it has glob characters (gitignore-like), else a case-insensitive substring. */
export function nameMatcher(query: string): (entry: Candidate) => boolean {
  if (GLOB_CHARS.test(query)) {
    const glob = callerGlobOf(query, true);
    if (glob.anchored) return (entry) => glob.test(entry.relPath);
    // Without "/", only the name can match: the path is never made (a scan tests a million names).
    return (entry) => glob.matchName(entry.name.toLowerCase());
  }
  const needle = query.toLowerCase();
  return (entry) => entry.name.toLowerCase().includes(needle);
}

/** A glob a caller sent, under the caller bounds; a bad one is the caller's INVALID_ARGUMENT. */
export function callerGlob(pattern: string, caseInsensitive: boolean): (relPath: string) => boolean {
  return callerGlobOf(pattern, caseInsensitive).test;
}

function callerGlobOf(pattern: string, caseInsensitive: boolean): Glob {
  try {
    return parseGlob(pattern, { caseInsensitive, ...CALLER_GLOB_LIMITS });
  } catch (error) {
    if (error instanceof GlobSyntaxError) throw new McpdError('INVALID_ARGUMENT', `invalid glob: ${error.message}`);
    throw error;
  }
}

export interface SearchOptions {
  readonly limit: number;
  readonly resume?: ResumePoint;
  readonly budget: WalkBudget;
  readonly signal?: AbortSignal;
}

export interface SearchResult {
  readonly matches: Entry[];
  /** Present when more matches may follow. */
  readonly next?: ResumePoint;
}

/**
 * Walks each start in turn and returns up to `limit` entries whose name matches. A root with a
 * current name index is scanned from it instead (same entries, same order, same cursors).
 */
export async function searchNames(
  viewer: Viewer,
  starts: readonly Target[],
  matches: (entry: Candidate) => boolean,
  options: SearchOptions,
): Promise<SearchResult> {
  const found: Entry[] = [];
  let lastStart = 0;
  for (let index = options.resume?.start ?? 0; index < starts.length; index++) {
    const start = starts[index] as Target;
    const after = index === options.resume?.start ? options.resume.after : undefined;
    const scanned = await viewer.index?.search(start, matches, {
      limit: options.limit - found.length,
      budget: options.budget,
      ...(after === undefined ? {} : { after }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (scanned) {
      if (scanned.matches.length > 0) lastStart = index;
      found.push(...scanned.matches);
      if (scanned.more) return { matches: found, next: { start: lastStart, after: (found.at(-1) as Entry).relPath } };
      if (options.budget.exhausted) break;
      continue;
    }
    for await (const entry of walk(viewer, start, { budget: options.budget, signal: options.signal, after })) {
      if (!matches(entry)) continue;
      // One match past the limit proves there is a next page; it is found again from the cursor.
      if (found.length === options.limit) {
        return { matches: found, next: { start: lastStart, after: (found.at(-1) as Entry).relPath } };
      }
      found.push(entry);
      lastStart = index;
    }
    if (options.budget.exhausted) break;
  }
  return { matches: found };
}

export interface GrepOptions {
  readonly pattern: { source: string; flags: string };
  /** Only files whose root-relative path matches this glob. */
  readonly include?: (relPath: string) => boolean;
  readonly maxMatches: number;
  readonly maxFileBytes: number;
  readonly timeoutMsPerFile: number;
  readonly budget: WalkBudget;
  readonly signal?: AbortSignal;
}

export interface GrepMatch extends LineMatch {
  readonly root: string;
  readonly path: string;
  readonly uri: string;
}

export interface GrepResult {
  readonly matches: GrepMatch[];
  readonly filesScanned: number;
  readonly skippedBinary: number;
  readonly skippedLarge: number;
  /** True when the match limit cut the result short. */
  readonly limited: boolean;
}

/** Regex over the contents of every visible text file under the starts, bounded every way. */
export async function grep(viewer: Viewer, starts: readonly Target[], options: GrepOptions): Promise<GrepResult> {
  const { include } = options;
  const matches: GrepMatch[] = [];
  let filesScanned = 0;
  let skippedBinary = 0;
  let skippedLarge = 0;
  for (const start of starts) {
    for await (const entry of walk(viewer, start, { budget: options.budget, signal: options.signal })) {
      if (entry.type !== 'file') continue;
      if (include && !include(entry.relPath)) continue;
      const opened = await openRegularFile(entry.target).catch(() => null);
      if (!opened) continue;
      let text: string | undefined;
      try {
        const size = Number(opened.stats.size);
        if (size > options.maxFileBytes) {
          skippedLarge += 1;
          continue;
        }
        // At most the size seen: a file growing meanwhile cannot make this read unbounded.
        const data = await readAt(opened.handle, 0, size);
        if (looksBinary(data.subarray(0, 8192))) {
          skippedBinary += 1;
          continue;
        }
        text = data.toString('utf8');
      } finally {
        await opened.handle.close();
      }
      filesScanned += 1;
      const hits = await viewer.regexes.match(
        options.pattern,
        text,
        options.maxMatches - matches.length + 1,
        options.timeoutMsPerFile,
      );
      for (const hit of hits) {
        if (matches.length === options.maxMatches) {
          return { matches, filesScanned, skippedBinary, skippedLarge, limited: true };
        }
        matches.push({ root: entry.root.name, path: entry.relPath, uri: entry.uri, ...hit });
      }
    }
    if (options.budget.exhausted) break;
  }
  return { matches, filesScanned, skippedBinary, skippedLarge, limited: false };
}

export interface TreeNode {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'other';
  children?: TreeNode[];
  /** A directory at the depth limit that has visible children which were not listed. */
  truncated?: true;
}

export interface TreeResult {
  readonly tree: TreeNode[];
  readonly entries: number;
  readonly truncatedByDepth: boolean;
  readonly truncatedByEntries: boolean;
}

export async function tree(
  viewer: Viewer,
  start: Target,
  options: { maxDepth: number; maxEntries: number; signal?: AbortSignal },
): Promise<TreeResult> {
  const budget = new WalkBudget(options.maxEntries);
  const top: TreeNode[] = [];
  const stack: TreeNode[][] = [top];
  let truncatedByDepth = false;
  for await (const entry of walk(viewer, start, { budget, signal: options.signal, maxDepth: options.maxDepth })) {
    stack.length = entry.depth;
    const node: TreeNode = { name: entry.name, type: entry.type };
    (stack[entry.depth - 1] as TreeNode[]).push(node);
    if (entry.type === 'directory') {
      if (entry.depth >= options.maxDepth || entry.symlink) {
        // Past the entry budget, nothing more is read, not even to say that a cut directory had children.
        if (!entry.symlink && !budget.exhausted && (await hasVisibleEntries(viewer, entry.target))) {
          node.truncated = true;
          truncatedByDepth = true;
        }
      } else {
        node.children = [];
        stack[entry.depth] = node.children;
      }
    }
  }
  return { tree: top, entries: budget.visited, truncatedByDepth, truncatedByEntries: budget.truncated };
}
