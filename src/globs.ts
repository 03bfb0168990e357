import picomatch from 'picomatch';

/**
 * Glob semantics, gitignore-like: a pattern without "/" matches the entry's name at any depth
 * (`*.md` matches `docs/a.md`); a pattern with "/" is anchored at the root (`workspace/**`).
 * Wildcards match dot-files. Paths are root-relative and POSIX-separated.
 */
/**
 * Compiles one pattern with those semantics. (picomatch's own `basename` option would apply
 * basename matching to slashed patterns too, so the choice is made here, per pattern.)
 */
export function compileGlob(
  pattern: string,
  options: { caseInsensitive?: boolean } = {},
): (relPath: string) => boolean {
  const anchored = pattern.includes('/');
  const test = picomatch(pattern, { dot: true, nocase: options.caseInsensitive === true });
  if (anchored) return test;
  return (relPath) => test(relPath.slice(relPath.lastIndexOf('/') + 1));
}

export class GlobList {
  private readonly matchers: ReadonlyArray<{ pattern: string; test: (path: string) => boolean }>;

  constructor(
    readonly patterns: readonly string[],
    options: { caseInsensitive?: boolean } = {},
  ) {
    this.matchers = patterns.map((pattern) => ({
      pattern,
      test: compileGlob(pattern, options),
    }));
  }

  /** The first pattern matching `relPath`, or undefined. */
  match(relPath: string): string | undefined {
    if (relPath === '') return undefined;
    for (const matcher of this.matchers) if (matcher.test(relPath)) return matcher.pattern;
    return undefined;
  }

  /**
   * The first pattern matching `relPath` or any of its ancestors, so an excluded directory hides
   * everything beneath it.
   */
  matchSelfOrAncestor(relPath: string): string | undefined {
    if (relPath === '') return undefined;
    let end = relPath.indexOf('/');
    while (end !== -1) {
      const hit = this.match(relPath.slice(0, end));
      if (hit) return hit;
      end = relPath.indexOf('/', end + 1);
    }
    return this.match(relPath);
  }

  get isEmpty(): boolean {
    return this.matchers.length === 0;
  }
}
