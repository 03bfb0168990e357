/**
 * Globs: the language the policy is written in (read, write and exclude rules) and the one
 * callers search with. Semantics are gitignore-like: a pattern without "/" matches an entry's name
 * at any depth (`*.md` matches `docs/a.md`); a pattern with "/" is anchored at the root
 * (`workspace/**`). Wildcards match dot-files. Paths are root-relative and POSIX-separated.
 *
 * Syntax: `*` (any run of characters within a name), `?` (one character), `[abc]`, `[a-z]`,
 * `[!a-z]` (one character of a class), `**` as a whole segment (any number of segments, none
 * included), `{a,b}` (alternatives, nestable, may contain "/"), `{1..9}` and `{a..z}` (ranges), and
 * `\` to escape the next character. Extglobs (`@(...)`, `!(...)`, ...) and leading-"!" negation are
 * refused with a clear error: the exclude list is how a policy says "not".
 *
 * Matching never backtracks exponentially: braces are expanded up front under a cap, a pattern is
 * then a list of segments, `**` is matched segment by segment and each name with the linear
 * wildcard algorithm. One match costs at most O(alternatives x pattern length x path length),
 * whatever the input, which is what lets a caller-supplied pattern run on the event loop. (A glob
 * compiled to a backtracking RegExp, as picomatch does, froze the process on a 103-character
 * pattern.)
 */

export class GlobSyntaxError extends Error {
  override readonly name = 'GlobSyntaxError';
}

export interface GlobOptions {
  readonly caseInsensitive?: boolean;
  /** Most alternatives the braces of one pattern may expand to. */
  readonly maxAlternatives?: number;
  /** Most characters all alternatives may hold together: bounds the work of one match. */
  readonly maxExpandedLength?: number;
}

/** Bounds for patterns the operator writes in the configuration. */
export const CONFIG_GLOB_LIMITS = { maxAlternatives: 1024, maxExpandedLength: 64 * 1024 } as const;
/** Bounds for patterns a caller sends (search_files, grep's include). */
export const CALLER_GLOB_LIMITS = { maxAlternatives: 64, maxExpandedLength: 4096 } as const;

type Token =
  | { readonly kind: 'char'; readonly char: string }
  | { readonly kind: 'any' }
  | { readonly kind: 'star' }
  | { readonly kind: 'class'; readonly negated: boolean; readonly test: (char: string) => boolean };

type Segment =
  | { readonly kind: 'globstar' }
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'anything' }
  | { readonly kind: 'suffix'; readonly text: string }
  | { readonly kind: 'prefix'; readonly text: string }
  | { readonly kind: 'tokens'; readonly tokens: readonly Token[] };

/** One brace-free alternative, split into segments. */
type Alternative = readonly Segment[];

const EXTGLOB = /(^|[^\\])[@!+*?]\(/;

/**
 * Expands braces into alternatives, refusing to go past `max` (counted before anything is built,
 * so `{a,b}{a,b}...` cannot make us materialise millions of strings first).
 */
function expandBraces(pattern: string, max: number, maxLength: number): string[] {
  const results = expand(pattern, max);
  const unique = [...new Set(results)];
  const total = unique.reduce((sum, text) => sum + text.length, 0);
  if (total > maxLength) {
    throw new GlobSyntaxError(`the braces expand to ${total} characters, more than the ${maxLength} allowed`);
  }
  return unique;
}

/** Finds the brace group starting at `open`: its end and top-level commas, or undefined if it is not one. */
function braceGroup(text: string, open: number): { close: number; commas: number[] } | undefined {
  let depth = 0;
  const commas: number[] = [];
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      i += 1;
      continue;
    }
    if (c === '{') depth += 1;
    else if (c === '}') {
      depth -= 1;
      if (depth === 0) return { close: i, commas };
    } else if (c === ',' && depth === 1) commas.push(i);
  }
  return undefined;
}

const RANGE = /^(-?\d+)\.\.(-?\d+)$|^([a-zA-Z])\.\.([a-zA-Z])$/;

function rangeItems(body: string, max: number): string[] | undefined {
  const match = RANGE.exec(body);
  if (!match) return undefined;
  const numeric = match[1] !== undefined;
  const from = numeric ? Number(match[1]) : (match[3] as string).charCodeAt(0);
  const to = numeric ? Number(match[2]) : (match[4] as string).charCodeAt(0);
  const count = Math.abs(to - from) + 1;
  if (count > max) throw new GlobSyntaxError(`the range {${body}} has ${count} items, more than the ${max} allowed`);
  const step = from <= to ? 1 : -1;
  const items: string[] = [];
  for (let v = from; v !== to + step; v += step) items.push(numeric ? String(v) : String.fromCharCode(v));
  return items;
}

function expand(text: string, max: number): string[] {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      i += 1;
      continue;
    }
    if (c !== '{') continue;
    const group = braceGroup(text, i);
    if (!group) continue;
    const body = text.slice(i + 1, group.close);
    let items: string[] | undefined;
    if (group.commas.length > 0) {
      const bounds = [i, ...group.commas, group.close];
      items = [];
      for (let k = 0; k + 1 < bounds.length; k++) {
        items.push(text.slice((bounds[k] as number) + 1, bounds[k + 1]));
      }
    } else {
      items = rangeItems(body, max);
    }
    // A lone "{x}" is literal text, as in a shell.
    if (items === undefined) continue;
    const head = text.slice(0, i);
    const tails = expand(text.slice(group.close + 1), max);
    const out: string[] = [];
    for (const item of items) {
      for (const middle of expand(item, max)) {
        for (const tail of tails) {
          if (out.length >= max) {
            throw new GlobSyntaxError(`the braces expand to more than ${max} alternatives`);
          }
          out.push(head + middle + tail);
        }
      }
    }
    return out;
  }
  return [text];
}

/** Splits on "/" that is not escaped. */
function splitSegments(text: string): string[] {
  const segments: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i += 1;
    else if (text[i] === '/') {
      segments.push(text.slice(start, i));
      start = i + 1;
    }
  }
  segments.push(text.slice(start));
  return segments;
}

function parseClass(text: string, start: number, fold: boolean): { token: Token; end: number } | undefined {
  let i = start + 1;
  let negated = false;
  if (text[i] === '!' || text[i] === '^') {
    negated = true;
    i += 1;
  }
  const chars = new Set<string>();
  const ranges: [string, string][] = [];
  let first = true;
  for (; i < text.length; i++) {
    let c = text[i] as string;
    if (c === ']' && !first) {
      const test = (char: string) => chars.has(char) || ranges.some(([lo, hi]) => char >= lo && char <= hi);
      // Folding: the name arrives lower-cased; a class written in either case still applies.
      const folded = fold ? (char: string) => test(char) || test(char.toUpperCase()) : test;
      return { token: { kind: 'class', negated, test: folded }, end: i };
    }
    first = false;
    if (c === '\\' && i + 1 < text.length) {
      i += 1;
      c = text[i] as string;
    }
    if (text[i + 1] === '-' && i + 2 < text.length && text[i + 2] !== ']') {
      let hi = text[i + 2] as string;
      let skip = 2;
      if (hi === '\\' && i + 3 < text.length) {
        hi = text[i + 3] as string;
        skip = 3;
      }
      ranges.push([c, hi]);
      i += skip;
      continue;
    }
    chars.add(c);
    if (fold) chars.add(c.toLowerCase());
  }
  // No closing "]": the "[" is an ordinary character.
  return undefined;
}

function compileSegment(text: string, fold: boolean): Segment {
  if (text === '**') return { kind: 'globstar' };
  const tokens: Token[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      if (i + 1 >= text.length) throw new GlobSyntaxError('a glob must not end with a lone "\\"');
      i += 1;
      tokens.push({ kind: 'char', char: fold ? (text[i] as string).toLowerCase() : (text[i] as string) });
    } else if (c === '*') {
      // "a**b" inside a name is just "a*b".
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (c === '?') {
      tokens.push({ kind: 'any' });
    } else if (c === '[') {
      const parsed = parseClass(text, i, fold);
      if (parsed) {
        tokens.push(parsed.token);
        i = parsed.end;
      } else {
        tokens.push({ kind: 'char', char: '[' });
      }
    } else {
      tokens.push({ kind: 'char', char: fold ? c.toLowerCase() : c });
    }
  }
  const literal = (from: number, to: number) =>
    tokens
      .slice(from, to)
      .map((token) => (token.kind === 'char' ? token.char : ''))
      .join('');
  const stars = tokens.filter((token) => token.kind === 'star').length;
  const simple = tokens.every((token) => token.kind === 'char' || token.kind === 'star');
  if (stars === 0 && simple) return { kind: 'literal', text: literal(0, tokens.length) };
  if (simple && stars === 1) {
    if (tokens.length === 1) return { kind: 'anything' };
    if (tokens[0]?.kind === 'star') return { kind: 'suffix', text: literal(1, tokens.length) };
    if (tokens.at(-1)?.kind === 'star') return { kind: 'prefix', text: literal(0, tokens.length - 1) };
  }
  return { kind: 'tokens', tokens };
}

function tokenMatches(token: Token, char: string): boolean {
  switch (token.kind) {
    case 'char':
      return token.char === char;
    case 'any':
      return true;
    case 'class':
      return token.test(char) !== token.negated;
    case 'star':
      return false;
  }
}

/**
 * The classic linear wildcard match, for any alphabet: the pattern's stars match any run of
 * values, everything else matches one value; on a mismatch, only the last star is moved, so the
 * cost is at most O(pattern x values) single matches whatever the input. Used twice: characters
 * of a name against a name's tokens (`*`), and names of a path against its segments (`**`).
 */
function wildcardMatch<P, V>(
  pattern: readonly P[],
  values: (index: number) => V,
  count: number,
  isStar: (item: P) => boolean,
  matchOne: (item: P, value: V) => boolean,
): boolean {
  let p = 0;
  let v = 0;
  let starP = -1;
  let starV = 0;
  while (v < count) {
    const item = pattern[p];
    if (item !== undefined && !isStar(item) && matchOne(item, values(v))) {
      p += 1;
      v += 1;
    } else if (item !== undefined && isStar(item)) {
      starP = p;
      starV = v;
      p += 1;
    } else if (starP !== -1) {
      p = starP + 1;
      starV += 1;
      v = starV;
    } else {
      return false;
    }
  }
  while (p < pattern.length && isStar(pattern[p] as P)) p += 1;
  return p === pattern.length;
}

const isStarToken = (token: Token) => token.kind === 'star';
const isGlobstar = (segment: Segment) => segment.kind === 'globstar';

function matchTokens(tokens: readonly Token[], name: string): boolean {
  return wildcardMatch(tokens, (i) => name[i] as string, name.length, isStarToken, tokenMatches);
}

function matchSegment(segment: Segment, name: string): boolean {
  switch (segment.kind) {
    case 'literal':
      return segment.text === name;
    case 'anything':
      return true;
    case 'suffix':
      return name.endsWith(segment.text);
    case 'prefix':
      return name.startsWith(segment.text);
    case 'tokens':
      return matchTokens(segment.tokens, name);
    case 'globstar':
      return true;
  }
}

/** Matches segments against the first `count` path names: `**` is a star over whole names. */
function matchSegments(pattern: Alternative, names: readonly string[], count: number): boolean {
  return wildcardMatch(pattern, (i) => names[i] as string, count, isGlobstar, matchSegment);
}

/** A compiled pattern: tests a root-relative path already split into names (lower-cased when folding). */
export interface Glob {
  readonly pattern: string;
  readonly anchored: boolean;
  readonly caseInsensitive: boolean;
  /** Whether the path made of the first `count` names matches. */
  matchNames(names: readonly string[], count: number): boolean;
  /** For a pattern without "/" (`anchored` false): whether a name (folded when folding) matches. */
  matchName(name: string): boolean;
  /** Whether every non-empty path matches (a globstar, or a globstar then a star): no need to look at it. */
  readonly matchesEverything: boolean;
  /** Convenience: matches a root-relative path. */
  test(relPath: string): boolean;
}

/** Parses and compiles a glob; throws GlobSyntaxError with a reason a person can act on. */
export function parseGlob(pattern: string, options: GlobOptions = {}): Glob {
  if (pattern.length === 0) throw new GlobSyntaxError('a glob must not be empty');
  if (pattern.includes('\0')) throw new GlobSyntaxError('a glob must not contain a NUL byte');
  if (pattern.startsWith('!')) {
    throw new GlobSyntaxError('negated globs ("!...") are not supported; list what to hide under exclude');
  }
  if (EXTGLOB.test(pattern)) {
    throw new GlobSyntaxError('extglob syntax such as @(...) or !(...) is not supported; use {a,b} alternatives');
  }
  const fold = options.caseInsensitive === true;
  const anchored = pattern.includes('/');
  const alternatives: Alternative[] = expandBraces(
    pattern,
    options.maxAlternatives ?? CONFIG_GLOB_LIMITS.maxAlternatives,
    options.maxExpandedLength ?? CONFIG_GLOB_LIMITS.maxExpandedLength,
  ).map((text) => {
    // One trailing "/" (a directory written the usual way) is allowed; other empty segments are not.
    const trimmed = text.length > 1 && text.endsWith('/') && !text.endsWith('\\/') ? text.slice(0, -1) : text;
    // A leading "./" means the root, as in picomatch; ".." never matches a normalised path: refused.
    const segments = splitSegments(trimmed);
    while (segments.length > 1 && segments[0] === '.') segments.shift();
    if (segments.some((segment) => segment.length === 0)) {
      throw new GlobSyntaxError('a glob must not contain an empty segment ("//", or a leading "/")');
    }
    if (segments.includes('..')) throw new GlobSyntaxError('a glob must not contain ".." segments');
    return segments.map((segment) => compileSegment(segment, fold));
  });
  const matchNames = anchored
    ? (names: readonly string[], count: number) => alternatives.some((alt) => matchSegments(alt, names, count))
    : // Without "/", every alternative is one segment, tried against the last name only.
      (names: readonly string[], count: number) => {
        if (count === 0) return false;
        const name = names[count - 1] as string;
        return alternatives.some((alt) => matchSegment(alt[0] as Segment, name));
      };
  const matchName = (name: string) => alternatives.some((alt) => matchSegment(alt[0] as Segment, name));
  // Globstars and at most one "*" match any path of one name or more, but only with a globstar in
  // an anchored pattern: there a lone "*" (as in "{*,src/**}") is one name at the top, not any name.
  const matchesEverything = alternatives.some(
    (alt) =>
      alt.every((segment) => segment.kind === 'globstar' || segment.kind === 'anything') &&
      alt.filter((segment) => segment.kind === 'anything').length <= 1 &&
      (!anchored || alt.some(isGlobstar)),
  );
  return {
    pattern,
    anchored,
    caseInsensitive: fold,
    matchNames,
    matchName,
    matchesEverything,
    test: anchored
      ? (relPath) => {
          if (relPath === '') return false;
          const names = (fold ? relPath.toLowerCase() : relPath).split('/');
          return matchNames(names, names.length);
        }
      : // Only the last name can match: no need to split the path (a search tests every name it walks).
        (relPath) => {
          if (relPath === '') return false;
          const last = relPath.slice(relPath.lastIndexOf('/') + 1);
          return matchName(fold ? last.toLowerCase() : last);
        },
  };
}

/** Why `pattern` is not a valid glob, or undefined when it is. */
export function globProblem(pattern: string, options: GlobOptions = {}): string | undefined {
  try {
    parseGlob(pattern, options);
    return undefined;
  } catch (error) {
    if (error instanceof GlobSyntaxError) return error.message;
    throw error;
  }
}

/** Compiles one pattern into a test of root-relative paths. */
export function compileGlob(pattern: string, options: GlobOptions = {}): (relPath: string) => boolean {
  return parseGlob(pattern, options).test;
}

/** An ordered list of globs, as the policy holds them: the first match names the rule. */
export class GlobList {
  private readonly globs: readonly Glob[];
  private readonly fold: boolean;

  constructor(
    readonly patterns: readonly string[],
    options: { caseInsensitive?: boolean } = {},
  ) {
    this.fold = options.caseInsensitive === true;
    this.globs = patterns.map((pattern) => parseGlob(pattern, { caseInsensitive: this.fold }));
  }

  private names(relPath: string): string[] {
    return (this.fold ? relPath.toLowerCase() : relPath).split('/');
  }

  /**
   * The first pattern matching `relPath`, or undefined. Hot (every entry of every listing and
   * walk): a pattern without "/" looks at the last name only, and the path is split only when an
   * anchored pattern needs it.
   */
  match(relPath: string): string | undefined {
    if (relPath === '' || this.globs.length === 0) return undefined;
    let last: string | undefined;
    let names: string[] | undefined;
    for (const glob of this.globs) {
      if (glob.matchesEverything) return glob.pattern;
      if (!glob.anchored) {
        last ??= this.lastName(relPath);
        if (glob.matchName(last)) return glob.pattern;
        continue;
      }
      names ??= this.names(relPath);
      if (glob.matchNames(names, names.length)) return glob.pattern;
    }
    return undefined;
  }

  private lastName(relPath: string): string {
    const last = relPath.slice(relPath.lastIndexOf('/') + 1);
    return this.fold ? last.toLowerCase() : last;
  }

  /**
   * The first pattern matching `relPath` or any of its ancestors, so an excluded directory hides
   * everything beneath it. The shallowest hit wins.
   */
  matchSelfOrAncestor(relPath: string): string | undefined {
    if (relPath === '' || this.globs.length === 0) return undefined;
    const names = this.names(relPath);
    for (let count = 1; count <= names.length; count++) {
      for (const glob of this.globs) if (glob.matchNames(names, count)) return glob.pattern;
    }
    return undefined;
  }

  get isEmpty(): boolean {
    return this.globs.length === 0;
  }
}
