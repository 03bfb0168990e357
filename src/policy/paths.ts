import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Root } from './types.js';

/** Longest path text we consider at all; Linux's PATH_MAX. */
export const MAX_PATH_LENGTH = 4096;
/** Longest single name; Linux's NAME_MAX, in bytes. */
export const MAX_SEGMENT_BYTES = 255;

export type ParsedPath =
  | {
      readonly ok: true;
      readonly root: Root;
      readonly relPath: string;
      /** How the root was chosen: by the path itself (absolute, URI), or by name (relative). */
      readonly addressed: 'path' | 'name';
    }
  | {
      readonly ok: false;
      readonly root: Root | null;
      readonly relPath: string | null;
      readonly rule: string;
      readonly reason: string;
    };

const fail = (rule: string, reason: string, root: Root | null = null, relPath: string | null = null): ParsedPath => ({
  ok: false,
  root,
  relPath,
  rule,
  reason,
});

/**
 * Turns what a client sent into a root and a lexically normal root-relative path, or says why not.
 * Accepted forms: a `file://` URI, an absolute path inside a root, or a path relative to `rootHint`
 * (a root name or URI; the first root when absent). Nothing here touches the file system: symlinks
 * are the resolver's business, after this.
 */
export function parseRequestPath(
  input: string,
  roots: readonly Root[],
  rootHint?: string,
  defaultRoot: Root | undefined = roots[0],
): ParsedPath {
  if (input.length > MAX_PATH_LENGTH) return fail('syntax:too-long', `path longer than ${MAX_PATH_LENGTH} characters`);
  if (input.includes('\0')) return fail('syntax:nul', 'path contains a NUL byte');
  if (input.includes('\\')) return fail('syntax:backslash', 'use "/" as the path separator');

  let text = input;
  if (/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    const decoded = decodeFileUri(text);
    if (typeof decoded !== 'string') return decoded;
    text = decoded;
  }

  if (text.startsWith('/')) {
    const segments = normalizeSegments(text.slice(1), 'floor');
    if (typeof segments === 'string') return fail(`syntax:${segments}`, describeSegmentProblem(segments));
    const absolute = `/${segments.join('/')}`;
    const match = findRootFor(absolute, roots);
    if (!match) return fail('containment:outside-roots', 'path is outside every root');
    return { ok: true, root: match.root, relPath: match.relPath, addressed: 'path' };
  }

  const root = rootHint === undefined ? defaultRoot : findRootByHint(rootHint, roots);
  if (!root) return fail('unknown-root', 'no root has that name or URI');
  const segments = normalizeSegments(text, 'root');
  if (segments === 'escape') return fail('containment:dotdot', '".." leads outside the root', root);
  if (typeof segments === 'string') return fail(`syntax:${segments}`, describeSegmentProblem(segments), root);
  return { ok: true, root, relPath: segments.join('/'), addressed: 'name' };
}

type SegmentProblem = 'empty-segment' | 'too-long' | 'escape';

function describeSegmentProblem(problem: SegmentProblem): string {
  switch (problem) {
    case 'empty-segment':
      return 'path contains an empty segment ("//")';
    case 'too-long':
      return `a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
    case 'escape':
      return '".." leads outside the root';
  }
}

/**
 * Splits and normalises "a/./b/../c" without the file system. One trailing "/" is allowed (clients
 * write directories that way); an empty segment anywhere else is refused. In 'root' mode ".." may
 * not climb above the start; in 'floor' mode (absolute paths) it stops at "/", as the kernel does.
 */
function normalizeSegments(text: string, mode: 'root' | 'floor'): string[] | SegmentProblem {
  const trimmed = text.endsWith('/') ? text.slice(0, -1) : text;
  if (trimmed === '' || trimmed === '.') return [];
  const out: string[] = [];
  for (const segment of trimmed.split('/')) {
    if (segment === '') return 'empty-segment';
    if (segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) {
        if (mode === 'root') return 'escape';
        continue;
      }
      out.pop();
      continue;
    }
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return 'too-long';
    out.push(segment);
  }
  return out;
}

function decodeFileUri(text: string): string | ParsedPath {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('syntax:bad-uri', 'not a valid URI');
  }
  if (url.protocol !== 'file:') return fail('syntax:scheme', 'only file:// URIs and paths are accepted');
  if (url.hostname !== '' && url.hostname !== 'localhost')
    return fail('syntax:bad-uri', 'file URIs must not name a host');
  let decoded: string;
  try {
    decoded = fileURLToPath(url);
  } catch {
    // fileURLToPath refuses encoded "/" (%2F) and NUL, which is exactly what we want refused.
    return fail('syntax:bad-uri', 'the URI encodes a separator or NUL byte');
  }
  if (decoded.includes('\0')) return fail('syntax:nul', 'path contains a NUL byte');
  if (decoded.includes('\\')) return fail('syntax:backslash', 'use "/" as the path separator');
  return decoded;
}

/** True when `child` is `parent` or lies beneath it; separator-aware ("/data" does not contain "/data2"). */
export function isWithin(parent: string, child: string): boolean {
  if (child === parent) return true;
  const prefix = parent.endsWith('/') ? parent : `${parent}/`;
  return child.startsWith(prefix);
}

/** Root-relative POSIX path of `child` under `parent`; call only when isWithin holds. */
export function relativeWithin(parent: string, child: string): string {
  if (child === parent) return '';
  return posix.relative(parent, child);
}

function findRootFor(absolute: string, roots: readonly Root[]): { root: Root; relPath: string } | undefined {
  let best: { root: Root; relPath: string; length: number } | undefined;
  for (const root of roots) {
    for (const base of [root.path, root.canonicalPath]) {
      if (isWithin(base, absolute) && (!best || base.length > best.length)) {
        best = { root, relPath: relativeWithin(base, absolute), length: base.length };
      }
    }
  }
  return best && { root: best.root, relPath: best.relPath };
}

function findRootByHint(hint: string, roots: readonly Root[]): Root | undefined {
  const trimmed = hint.endsWith('/') ? hint.slice(0, -1) : hint;
  return roots.find((root) => root.name === hint || root.uri === trimmed);
}

/** How a message names a root-relative path: `Root name:path` (`Root name:.` for the root itself). */
export function displayFor(root: { readonly name: string }, relPath: string): string {
  return `${root.name}:${relPath === '' ? '.' : relPath}`;
}

/** The URI a client sees for a root-relative path. */
export function uriFor(root: Root, relPath: string): string {
  if (relPath === '') return root.uri;
  return `${root.uri}/${relPath.split('/').map(encodeURIComponent).join('/')}`;
}
