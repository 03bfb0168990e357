import { describe, expect, it } from 'vitest';
import { GlobList } from '../../src/policy/globs.js';

interface MatchCase {
  patterns: string[];
  path: string;
  /** The pattern expected to match, or undefined for no match. */
  expected: string | undefined;
  caseInsensitive?: boolean;
}

const title = (c: MatchCase): string =>
  `${JSON.stringify(c.patterns)}${c.caseInsensitive ? ' (nocase)' : ''} ${JSON.stringify(c.path)} -> ${
    c.expected ?? 'no match'
  }`;

describe('GlobList.match', () => {
  const cases: MatchCase[] = [
    // Slash-less patterns match the entry's name at any depth.
    { patterns: ['*.md'], path: 'a.md', expected: '*.md' },
    { patterns: ['*.md'], path: 'docs/a.md', expected: '*.md' },
    { patterns: ['*.md'], path: 'docs/deep/er/a.md', expected: '*.md' },
    { patterns: ['*.md'], path: 'a.txt', expected: undefined },
    { patterns: ['*.md'], path: 'a.md/b.txt', expected: undefined },
    { patterns: ['*.md'], path: 'a.md.bak', expected: undefined },
    { patterns: ['README.md'], path: 'sub/README.md', expected: 'README.md' },
    { patterns: ['README.md'], path: 'sub/NOT-README.md', expected: undefined },
    { patterns: ['id_rsa*'], path: 'home/.ssh/id_rsa.pub', expected: 'id_rsa*' },
    { patterns: ['?.md'], path: 'x/y.md', expected: '?.md' },
    { patterns: ['?.md'], path: 'x/yy.md', expected: undefined },
    { patterns: ['*.{md,txt}'], path: 'notes/today.txt', expected: '*.{md,txt}' },
    { patterns: ['.git'], path: '.gitignore', expected: undefined },
    { patterns: ['.git'], path: 'sub/.git', expected: '.git' },
    // Patterns with a slash are anchored at the root.
    { patterns: ['docs/*.md'], path: 'docs/a.md', expected: 'docs/*.md' },
    { patterns: ['docs/*.md'], path: 'x/docs/a.md', expected: undefined },
    { patterns: ['docs/*.md'], path: 'docs/sub/a.md', expected: undefined },
    { patterns: ['docs/*.md'], path: 'a.md', expected: undefined },
    { patterns: ['workspace/**/*'], path: 'workspace/a.md', expected: 'workspace/**/*' },
    { patterns: ['workspace/**/*'], path: 'workspace/a/b/c.md', expected: 'workspace/**/*' },
    { patterns: ['workspace/**/*'], path: 'other/workspace/a.md', expected: undefined },
    { patterns: ['workspace/**/*'], path: 'workspace2/a.md', expected: undefined },
    { patterns: ['config/*.conf'], path: 'config/app.conf', expected: 'config/*.conf' },
    { patterns: ['config/*.conf'], path: 'other/config/app.conf', expected: undefined },
    { patterns: ['**/*.md'], path: 'a/b/c.md', expected: '**/*.md' },
    { patterns: ['docs/internal/*'], path: 'docs/internal/plan.md', expected: 'docs/internal/*' },
    { patterns: ['docs/internal/*'], path: 'x/docs/internal/plan.md', expected: undefined },
    // Wildcards match dot-files.
    { patterns: ['*'], path: '.env', expected: '*' },
    { patterns: ['*.md'], path: '.hidden.md', expected: '*.md' },
    { patterns: ['*.md'], path: '.github/notes.md', expected: '*.md' },
    { patterns: ['docs/*'], path: 'docs/.secret', expected: 'docs/*' },
    { patterns: ['workspace/**/*'], path: 'workspace/.cache/x.md', expected: 'workspace/**/*' },
    { patterns: ['.env.*'], path: '.env.local', expected: '.env.*' },
    { patterns: ['.env.*'], path: '.env', expected: undefined },
    // Case: sensitive by default, insensitive on request.
    { patterns: ['*.MD'], path: 'a.md', expected: undefined },
    { patterns: ['.env'], path: '.ENV', expected: undefined },
    { patterns: ['.env'], path: '.ENV', expected: '.env', caseInsensitive: true },
    { patterns: ['.env'], path: 'sub/.Env', expected: '.env', caseInsensitive: true },
    { patterns: ['credentials.*'], path: 'CREDENTIALS.JSON', expected: 'credentials.*', caseInsensitive: true },
    { patterns: ['*.key'], path: 'a/Secret.KEY', expected: '*.key', caseInsensitive: true },
    { patterns: ['docs/*.md'], path: 'DOCS/A.MD', expected: 'docs/*.md', caseInsensitive: true },
    { patterns: ['docs/*.md'], path: 'DOCS/A.MD', expected: undefined },
    // The first matching pattern is reported.
    { patterns: ['*.md', 'docs/**'], path: 'docs/a.md', expected: '*.md' },
    { patterns: ['docs/**', '*.md'], path: 'docs/a.md', expected: 'docs/**' },
    { patterns: ['*.txt', '*.md'], path: 'a.md', expected: '*.md' },
    // The root itself never matches anything.
    { patterns: ['*'], path: '', expected: undefined },
    { patterns: ['**'], path: '', expected: undefined },
  ];

  it.each(cases.map((c) => [title(c), c] as const))('%s', (_title, c) => {
    const globs = new GlobList(c.patterns, { caseInsensitive: c.caseInsensitive === true });
    expect(globs.match(c.path)).toBe(c.expected);
  });
});

describe('GlobList.matchSelfOrAncestor', () => {
  const cases: MatchCase[] = [
    { patterns: ['.git'], path: '.git', expected: '.git' },
    { patterns: ['.git'], path: '.git/config', expected: '.git' },
    { patterns: ['.git'], path: 'a/.git/objects/ab/cdef', expected: '.git' },
    { patterns: ['.git'], path: 'a/b', expected: undefined },
    { patterns: ['.git'], path: '.github/workflows/ci.yml', expected: undefined },
    { patterns: ['*.key'], path: 'keys.key/readme.md', expected: '*.key' },
    { patterns: ['secret'], path: 'x/secret/y/z.md', expected: 'secret' },
    { patterns: ['docs/private'], path: 'docs/private/a.md', expected: 'docs/private' },
    { patterns: ['docs/private'], path: 'other/docs/private/a.md', expected: undefined },
    { patterns: ['docs/internal/*'], path: 'docs/internal/sub/deep.md', expected: 'docs/internal/*' },
    { patterns: ['.env'], path: '.ENV/x', expected: '.env', caseInsensitive: true },
    { patterns: ['.env'], path: '.ENV/x', expected: undefined },
    // The shallowest hit wins, whatever the pattern order.
    { patterns: ['*.md', '.git'], path: '.git/a.md', expected: '.git' },
    { patterns: ['*'], path: '', expected: undefined },
  ];

  it.each(cases.map((c) => [title(c), c] as const))('%s', (_title, c) => {
    const globs = new GlobList(c.patterns, { caseInsensitive: c.caseInsensitive === true });
    expect(globs.matchSelfOrAncestor(c.path)).toBe(c.expected);
  });

  it('does not hide siblings that merely share a prefix', () => {
    const globs = new GlobList(['build'], { caseInsensitive: true });
    expect(globs.matchSelfOrAncestor('build/out.md')).toBe('build');
    expect(globs.matchSelfOrAncestor('build2/out.md')).toBeUndefined();
    expect(globs.matchSelfOrAncestor('prebuild/out.md')).toBeUndefined();
  });
});

describe('GlobList', () => {
  it('reports its patterns and whether it is empty', () => {
    expect(new GlobList([]).isEmpty).toBe(true);
    expect(new GlobList([]).match('a.md')).toBeUndefined();
    const globs = new GlobList(['*.md', 'docs/**']);
    expect(globs.isEmpty).toBe(false);
    expect(globs.patterns).toEqual(['*.md', 'docs/**']);
  });
});
