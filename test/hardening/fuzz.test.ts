import { createHash, randomBytes } from 'node:crypto';
import { linkSync, symlinkSync, unlinkSync } from 'node:fs';
import { link, lstat, mkdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import fc from 'fast-check';
import picomatch from 'picomatch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.js';
import { BUILTIN_EXCLUDES, type RootConfig } from '../../src/config/schema.js';
import { isMcpdError } from '../../src/errors.js';
import { readTarget } from '../../src/fs/files.js';
import { NodePathResolver } from '../../src/fs/resolver.js';
import { canonicalizeRoots } from '../../src/fs/roots.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS, type Decision, type Operation, type Root } from '../../src/policy/types.js';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { prng } from '../helpers/random.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { type Swapper, snapshotTree, startSwapper } from '../helpers/swapper.js';
import { tempDir, writeTree } from '../helpers/workspace.js';

/*
 * Property-based fuzzing of the access policy and of the tools end to end, against real trees in
 * which symlink chains and hard links are made on the fly, pointing in and out of the roots, at
 * excluded files and at unreadable ones; end to end, a directory is also swapped for a link to
 * outside under the running calls. The invariant: nothing read, listed, written, moved or deleted
 * lies outside a root or is excluded, and every attempt has exactly one audit record per path
 * decision.
 *
 * MCPD_FUZZ_RUNS (default 10,000) cases in all: 80% for the policy alone, 20% end to end (each a
 * sequence of up to three calls and attacks). MCPD_FUZZ_SEED replaces the fixed seed; a failure
 * names the seed and the fast-check path to replay it.
 */

const TOTAL_RUNS = Number(process.env.MCPD_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.MCPD_FUZZ_SEED ?? 20_261_130);
const POLICY_RUNS = Math.round(TOTAL_RUNS * 0.8);
const E2E_RUNS = TOTAL_RUNS - POLICY_RUNS;
const REPLAY = `(seed ${SEED}; replay with MCPD_FUZZ_SEED=${SEED} MCPD_FUZZ_RUNS=${TOTAL_RUNS})`;

const tag = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;
/** Contents of files outside every root. */
const OUTSIDE = tag('OUTSIDE-MARKER');
/** Contents of excluded files inside a root. */
const SECRET = tag('SECRET-MARKER');
/** Contents of files inside a root that no read rule matches. */
const UNREADABLE = tag('UNREADABLE-MARKER');
/** Contents of the second root's files: readable there, never through the first root. */
const OTHER_ROOT = tag('OTHER-ROOT-MARKER');
/** Names that exist only outside: no request names them, so no answer may either. */
const CANARY = tag('canary');

const EXCLUDES = [...BUILTIN_EXCLUDES, 'secrets'];

// ---------------------------------------------------------------------------------------------
// Oracles: the documented semantics, computed independently of src/ (picomatch, node:path).

/** An exclude matches a name at any depth, case-insensitively: any segment matching excludes the path. */
function excludedByOracle(relPath: string): string | undefined {
  for (const segment of relPath.split('/')) {
    for (const pattern of EXCLUDES) {
      const options = { dot: true } as const;
      if (
        picomatch.isMatch(segment, pattern, { ...options, nocase: true }) ||
        picomatch.isMatch(segment.toLowerCase(), pattern.toLowerCase(), options)
      ) {
        return pattern;
      }
    }
  }
  return undefined;
}

/** gitignore-like: a glob without "/" matches the name at any depth, one with "/" the whole path. */
function globsMatch(globs: readonly string[], relPath: string): boolean {
  const name = relPath.slice(relPath.lastIndexOf('/') + 1);
  return globs.some((glob) => picomatch.isMatch(glob.includes('/') ? relPath : name, glob, { dot: true }));
}

const within = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);

/** The markers no answer may ever hold; OTHER_ROOT only when the second root was addressed legitimately. */
function leakIn(text: string, allowOtherRoot: boolean): string | undefined {
  for (const marker of [OUTSIDE, SECRET, UNREADABLE, CANARY, ...(allowOtherRoot ? [] : [OTHER_ROOT])]) {
    if (text.includes(marker)) return marker;
  }
  return undefined;
}

/** Percent-encodes the characters `pick` chooses (UTF-8 bytes, random hex case): hostile URIs. */
function percentEncode(text: string, pick: () => number): string {
  let out = '';
  for (const char of text) {
    const roll = pick();
    // "/" seldom: an encoded separator is refused outright, which would hide the rest of the URI.
    if (roll < (char === '/' ? 0.01 : 0.1)) {
      const hex = [...Buffer.from(char, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
      out += roll < 0.05 ? hex.toUpperCase() : hex;
    } else if (roll < 0.15 && char === '%') {
      out += '%25';
    } else {
      out += char;
    }
  }
  return out;
}

/** Segments no well-behaved client sends. */
const HOSTILE_SEGMENTS = [
  '\0',
  'a\0.md',
  '\\',
  '..\\..',
  'a\\b.md',
  '%2e%2e',
  '%2E%2e',
  '%2f',
  '%2F..%2F',
  '%00',
  '%252e%252e',
  '%5c',
  '\u202e',
  '\uff0e\uff0e',
  '\uff0f',
  '\u2215',
  '\u2024\u2024',
  'x'.repeat(256),
  '\u00e9'.repeat(128),
  '?',
  '#',
  '%',
  ':',
  'C:',
  'file:',
  '~',
  '$HOME',
];
const DOT_SEGMENTS = ['.', '..', '..', '..', '...', ' ', '. .', '.. ', ''];

/** Relative, absolute (in one of several bases) or a file URI, as a string. */
type Form = 'rel' | 'dot' | 'slash' | 'double' | 'abs' | 'uri' | 'uri-localhost' | 'uri-host' | 'uri-odd';

function segmentArb(names: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...names) },
    { weight: 5, arbitrary: fc.constantFrom(...DOT_SEGMENTS) },
    { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 5 }) },
  );
}

interface PathSpec {
  readonly segments: readonly string[];
  readonly form: Form;
  /** Index into the bases absolute forms are built on. */
  readonly base: number;
  readonly encodingSeed: number;
  readonly odd: number;
}

/**
 * Paths of segments: mostly a path the fixture gives meaning to (a file, a link slot, a path
 * through a link) with up to two more segments, else up to seven segments of anything.
 */
function pathSpecArb(names: readonly string[], known: readonly string[], bases: number): fc.Arbitrary<PathSpec> {
  const segment = segmentArb(names);
  return fc.record({
    segments: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...known).map((path) => (path === '' ? [] : path.split('/'))) },
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.constantFrom(...known), fc.array(segment, { minLength: 1, maxLength: 2 }))
          .map(([path, more]) => [...(path === '' ? [] : path.split('/')), ...more]),
      },
      { weight: 2, arbitrary: fc.array(segment, { minLength: 0, maxLength: 7 }) },
    ),
    form: fc.constantFrom<Form>(
      'rel',
      'rel',
      'rel',
      'rel',
      'rel',
      'dot',
      'slash',
      'double',
      'abs',
      'abs',
      'abs',
      'uri',
      'uri',
      'uri-localhost',
      'uri-host',
      'uri-odd',
    ),
    base: fc.nat({ max: bases - 1 }),
    encodingSeed: fc.nat(),
    odd: fc.nat({ max: 5 }),
  });
}

/** The string a client sends, and (for the plain forms) the path it denotes before any link is followed. */
function render(spec: PathSpec, bases: readonly string[]): { input: string; lexical?: { abs?: string; rel?: string } } {
  const rel = spec.segments.join('/');
  const base = bases[spec.base] as string;
  const abs = `${base}/${rel}`;
  const pick = prng(spec.encodingSeed);
  switch (spec.form) {
    case 'rel':
      return { input: rel, lexical: { rel } };
    case 'dot':
      return { input: `./${rel}`, lexical: { rel: `./${rel}` } };
    case 'slash':
      return { input: `${rel}/`, lexical: { rel } };
    case 'double':
      return { input: rel.includes('/') ? rel.replace('/', '//') : `${rel}//x` };
    case 'abs':
      return { input: abs, lexical: { abs } };
    case 'uri':
      return { input: `file://${percentEncode(abs, pick)}` };
    case 'uri-localhost':
      return { input: `file://localhost${percentEncode(abs, pick)}` };
    case 'uri-host':
      return { input: `file://evil.example${percentEncode(abs, pick)}` };
    case 'uri-odd':
      return {
        input: [
          `file:${abs}`,
          `FILE://${abs}`,
          `file:////${abs}`,
          `http://localhost${abs}`,
          `file://${abs}?q=1#frag`,
          `file://${abs.replaceAll('/', '%2F')}`,
        ][spec.odd] as string,
      };
  }
}

/** Which root a lexically normal absolute path lies in (by configured or canonical path), longest first. */
function rootOfAbsolute(roots: readonly Root[], absolute: string): { root: Root; rel: string } | undefined {
  let best: { root: Root; rel: string; length: number } | undefined;
  for (const root of roots) {
    for (const base of [root.path, root.canonicalPath]) {
      if (within(base, absolute) && (!best || base.length > best.length)) {
        best = { root, rel: absolute === base ? '' : absolute.slice(base.length + 1), length: base.length };
      }
    }
  }
  return best && { root: best.root, rel: best.rel };
}

/** Removes the trailing "/" and leading "./" posix.normalize leaves; "." is the root. */
const tidy = (path: string) => {
  const trimmed = path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path;
  return trimmed === '.' ? '' : trimmed;
};

// ---------------------------------------------------------------------------------------------
// (a) The policy alone.

describe('the policy, fuzzed over real trees with symlink chains and hard links made on the fly', () => {
  let cleanup: () => Promise<void> = async () => {};
  let tmp: string;
  let policy: PolicyEngine;
  let roots: Root[];
  const SYMLINK_SLOTS = ['l0', 'docs/l1', 'deep/a/l2', 'work/l3'];
  const HARDLINK_SLOTS = ['h0.md', 'docs/h1.md', 'work/h2.md'];
  let symlinkTargets: string[];
  let hardlinkSources: string[];
  let bases: string[];

  beforeAll(async () => {
    const made = await tempDir('mcpd-fuzz-policy-');
    cleanup = made.cleanup;
    tmp = made.dir;
    const r = join(tmp, 'r');
    await writeTree(r, {
      'README.md': '# readme\n',
      'docs/a.md': '# a\n',
      'docs/b.txt': 'b\n',
      'docs/c.cfg': `${UNREADABLE}\n`,
      'notes.txt': `${UNREADABLE}\n`,
      '.env': `TOKEN=${SECRET}\n`,
      '.Env': `TOKEN=${SECRET}\n`,
      '.env.local': `TOKEN=${SECRET}\n`,
      'credentials.json': `{"password":"${SECRET}"}\n`,
      'sub/x.key': `${SECRET}\n`,
      'sub/id_rsa': `${SECRET}\n`,
      '.git/config': `${SECRET}\n`,
      '.git/HEAD.md': `${SECRET}\n`,
      'keys.pem/inner.md': `${SECRET}\n`,
      'secrets/s.md': `${SECRET}\n`,
      'deep/a/b/c.md': '# c\n',
      'work/w.md': '# w\n',
      'work/sub/v.md': '# v\n',
      'caf\u00e9.md': '# cafe\n',
    });
    await writeTree(join(tmp, 'outside'), {
      'secret.md': `${OUTSIDE}\n`,
      '.env': `${OUTSIDE}\n`,
      'a.md': `${OUTSIDE}\n`,
      'dir/inner.md': `${OUTSIDE}\n`,
      [`${CANARY}.md`]: `${OUTSIDE}\n`,
    });
    await writeTree(join(tmp, 'r2'), { 'secret.md': `${OUTSIDE}\n` });
    await writeTree(join(tmp, 'r-old'), { 'secret.md': `${OUTSIDE}\n` });
    await writeTree(join(tmp, 'g'), { 'g.md': `${OTHER_ROOT}\n`, '.env': `${SECRET}\n` });
    await writeTree(join(tmp, 'lreal'), { 'l.md': '# l\n', '.env': `${SECRET}\n` });
    await symlink(join(tmp, 'lreal'), join(tmp, 'lroot'));

    const rootConfig = (name: string, path: string, read: string[], write: string[]): RootConfig => ({
      name,
      description: '',
      uri: pathToFileURL(path).href,
      path,
      read,
      write,
      hardLinks: 'refuse',
    });
    const canonical = await canonicalizeRoots([
      rootConfig('F', r, ['*.md', 'docs/**/*.txt'], ['work/**/*']),
      rootConfig('G', join(tmp, 'g'), ['*.md'], []),
      rootConfig('L', join(tmp, 'lroot'), ['*.md'], ['*.md']),
    ]);
    expect(canonical.problems).toEqual([]);
    roots = canonical.roots;
    policy = new PolicyEngine({ roots, exclude: EXCLUDES, resolver: new NodePathResolver() });

    const o = join(tmp, 'outside');
    symlinkTargets = [
      o,
      join(o, 'secret.md'),
      join(o, 'dir'),
      r,
      join(r, '.env'),
      join(r, 'README.md'),
      join(r, 'docs'),
      join(r, 'notes.txt'),
      join(r, 'secrets'),
      join(tmp, 'r2', 'secret.md'),
      join(tmp, 'g', 'g.md'),
      join(tmp, 'g'),
      join(tmp, 'lroot'),
      join(tmp, 'lreal', 'l.md'),
      '/',
      '/etc',
      tmp,
      '.',
      '..',
      '../..',
      '../../..',
      'README.md',
      '../README.md',
      '../.env',
      '.env',
      '../docs/c.cfg',
      '../../outside/secret.md',
      '../outside',
      '../../outside',
      '../../../outside',
      '../r2',
      'nowhere.md',
      'l0',
      '../l0',
      'l1',
      'docs/l1',
      '../docs/l1',
      'a/l2',
      'deep/a/l2',
      '../deep/a/l2',
      'work/l3',
      '../work/l3',
      'h0.md',
      '../h0.md',
    ];
    hardlinkSources = [
      join(o, 'secret.md'),
      join(o, '.env'),
      join(r, '.env'),
      join(r, 'credentials.json'),
      join(r, 'docs/c.cfg'),
      join(r, 'secrets/s.md'),
      join(r, 'README.md'),
      join(tmp, 'g', 'g.md'),
      join(tmp, 'lreal', '.env'),
    ];
    bases = [r, r, r, join(tmp, 'lroot'), join(tmp, 'lreal'), join(tmp, 'g'), tmp, join(tmp, 'r2'), '', '/etc'];
  });

  afterAll(async () => {
    await cleanup();
  });

  const names = [
    'README.md',
    'docs',
    'a.md',
    'b.txt',
    'c.cfg',
    'notes.txt',
    '.env',
    '.Env',
    '.ENV',
    '.env.local',
    'credentials.json',
    'CREDENTIALS.JSON',
    'sub',
    'x.key',
    'X.KEY',
    'id_rsa',
    '.git',
    'config',
    'HEAD.md',
    'keys.pem',
    'inner.md',
    'secrets',
    's.md',
    'deep',
    'a',
    'b',
    'c.md',
    'work',
    'w.md',
    'v.md',
    'caf\u00e9.md',
    'cafe\u0301.md',
    'l0',
    'l1',
    'l2',
    'l3',
    'h0.md',
    'h1.md',
    'h2.md',
    'secret.md',
    'outside',
    'dir',
    'r',
    'r2',
    'r-old',
    'g',
    'g.md',
    'lroot',
    'lreal',
    'l.md',
    'nope.md',
    '.mcpd-tmp-x',
  ];

  const known = [
    '',
    'README.md',
    'docs',
    'docs/a.md',
    'docs/b.txt',
    'docs/c.cfg',
    'notes.txt',
    '.env',
    'credentials.json',
    'sub/x.key',
    '.git/HEAD.md',
    'keys.pem/inner.md',
    'secrets/s.md',
    'deep/a/b/c.md',
    'work',
    'work/w.md',
    'work/sub/v.md',
    'work/new.md',
    'caf\u00e9.md',
    'l0',
    'l0/secret.md',
    'l0/inner.md',
    'l0/a.md',
    'l0/README.md',
    'l0/.env',
    'l0/g.md',
    'l0/l.md',
    'l0/dir/inner.md',
    'l0/l1',
    'l0/docs/l1',
    'docs/l1',
    'docs/l1/secret.md',
    'docs/l1/a.md',
    'docs/l1/inner.md',
    'deep/a/l2',
    'deep/a/l2/c.md',
    'deep/a/l2/b/c.md',
    'deep/a/l2/secret.md',
    'work/l3',
    'work/l3/w.md',
    'work/l3/new.md',
    'work/l3/secret.md',
    'h0.md',
    'docs/h1.md',
    'work/h2.md',
  ];

  it(`decides ${POLICY_RUNS} hostile paths: an allow is always inside its root, never excluded, and readable by a rule`, async ({
    annotate,
  }) => {
    const r = join(tmp, 'r');
    const tally: Record<string, number> = {};
    const caseArb = fc.record({
      op: fc.constantFrom<Operation>('read', 'read', 'list', 'write'),
      path: pathSpecArb(names, known, 10),
      root: fc.constantFrom<string | undefined>(
        undefined,
        undefined,
        undefined,
        'F',
        'G',
        'L',
        'nope',
        pathToFileURL(join(tmp, 'r')).href,
        `${pathToFileURL(join(tmp, 'r')).href}/`,
      ),
      symlinks: fc.array(
        fc.record({
          slot: fc.nat({ max: SYMLINK_SLOTS.length - 1 }),
          target: fc.nat({ max: 1000 }),
        }),
        { maxLength: 4 },
      ),
      hardlinks: fc.array(
        fc.record({ slot: fc.nat({ max: HARDLINK_SLOTS.length - 1 }), source: fc.nat({ max: 1000 }) }),
        { maxLength: 3 },
      ),
    });

    /** The links of the previous case, removed before the next one's are made (synchronously: thousands of cases). */
    const planted = new Set<string>();
    const plant = (
      symlinks: readonly { slot: number; target: number }[],
      hardlinks: readonly { slot: number; source: number }[],
    ) => {
      for (const at of planted) unlinkSync(at);
      planted.clear();
      for (const { slot, target } of symlinks) {
        const at = join(r, SYMLINK_SLOTS[slot] as string);
        if (planted.has(at)) unlinkSync(at);
        symlinkSync(symlinkTargets[target % symlinkTargets.length] as string, at);
        planted.add(at);
      }
      for (const { slot, source } of hardlinks) {
        const at = join(r, HARDLINK_SLOTS[slot] as string);
        if (planted.has(at)) unlinkSync(at);
        linkSync(hardlinkSources[source % hardlinkSources.length] as string, at);
        planted.add(at);
      }
    };

    const check = async (op: Operation, input: string, lexical: ReturnType<typeof render>['lexical'], d: Decision) => {
      const shown = d.allow
        ? { rule: d.rule, root: d.root, relPath: d.target.relPath, absPath: d.target.absPath, kind: d.target.kind }
        : { rule: d.rule, root: d.root, path: d.path };
      const why = `${op} ${JSON.stringify(input)} -> ${JSON.stringify(shown)}`;
      if (!d.allow) {
        // A denial never names a host path.
        expect(d.path === null || !d.path.startsWith('/'), why).toBe(true);
        return;
      }
      const { target } = d;
      const { root } = target;
      // Inside the root it belongs to, as a canonical path, relative path consistent with it.
      expect(roots.includes(root), why).toBe(true);
      expect(within(root.canonicalPath, target.absPath), why).toBe(true);
      expect(target.relPath, why).toBe(
        target.absPath === root.canonicalPath ? '' : posix.relative(root.canonicalPath, target.absPath),
      );
      // Resolved again, now, by the kernel: the same place, and what the decision says it is.
      const followLast = op !== 'write' || target.relPath === '';
      if (target.kind === 'missing') {
        let existing = target.absPath;
        for (;;) {
          const found = await lstat(existing).then(
            () => true,
            () => false,
          );
          if (found) break;
          existing = dirname(existing);
        }
        expect(existing, why).not.toBe(target.absPath);
        expect(await realpath(existing), why).toBe(existing);
        expect(within(root.canonicalPath, existing), why).toBe(true);
        expect((await stat(existing)).isDirectory(), why).toBe(true);
      } else if (followLast) {
        expect(await realpath(target.absPath), why).toBe(target.absPath);
      } else {
        expect(await realpath(dirname(target.absPath)), why).toBe(dirname(target.absPath));
        const entry = await lstat(target.absPath);
        const kind = entry.isSymbolicLink()
          ? 'symlink'
          : entry.isDirectory()
            ? 'directory'
            : entry.isFile()
              ? 'file'
              : 'other';
        expect(kind, why).toBe(target.kind);
      }
      // Never excluded, on the canonical path...
      expect(excludedByOracle(target.relPath), why).toBeUndefined();
      // ...nor on the path as asked for (lexically normal, before any link).
      if (lexical?.rel !== undefined) {
        const normal = tidy(posix.normalize(lexical.rel));
        expect(root.name, why).toBe('F');
        expect(normal === '..' || normal.startsWith('../'), why).toBe(false);
        expect(excludedByOracle(normal), why).toBeUndefined();
      }
      if (lexical?.abs !== undefined) {
        const normal = tidy(posix.normalize(lexical.abs));
        const owner = rootOfAbsolute(roots, normal);
        expect(owner?.root.name, why).toBe(root.name);
        if (owner) expect(excludedByOracle(owner.rel), why).toBeUndefined();
      }
      // The rule for the operation, on the canonical path.
      if (op === 'write') {
        expect(target.relPath, why).not.toBe('');
        expect(globsMatch(root.write, target.relPath), why).toBe(true);
        return;
      }
      if (target.kind !== 'directory' && target.relPath !== '') {
        expect(globsMatch(root.read, target.relPath), why).toBe(true);
      }
      // And what a read of it returns: never a secret, an outside or unreadable file, nor a second name.
      if (target.kind === 'file') {
        const nlink = (await stat(target.absPath)).nlink;
        try {
          const read = await readTarget(target, { range: { kind: 'whole' }, maxBytes: 1 << 20 });
          const text = read.kind === 'text' ? read.text : read.data.toString('latin1');
          expect(leakIn(text, root.name === 'G'), why).toBeUndefined();
          expect(nlink, `${why}: a file with ${nlink} links was read`).toBe(1);
          tally.readOk = (tally.readOk ?? 0) + 1;
        } catch (error) {
          if (!isMcpdError(error)) throw error;
          expect(error.code, why).toBe('NOT_FOUND_OR_DENIED');
          tally.readRefused = (tally.readRefused ?? 0) + 1;
        }
      }
    };

    await fc
      .assert(
        fc.asyncProperty(caseArb, async ({ op, path, root, symlinks, hardlinks }) => {
          plant(symlinks, hardlinks);
          const { input, lexical } = render(path, bases);
          const decision = await policy.decide(ANONYMOUS, op, input, root === undefined ? {} : { root });
          const key = `${op}:${decision.allow ? 'allow' : 'deny'}`;
          tally[key] = (tally[key] ?? 0) + 1;
          // The lexical oracles apply to the paths whose root is known from the text alone.
          const plain = root === undefined || root === 'F' ? lexical : lexical?.abs ? { abs: lexical.abs } : undefined;
          await check(op, input, plain, decision);
        }),
        { numRuns: POLICY_RUNS, seed: SEED },
      )
      .catch((error: Error) => {
        throw new Error(`${error.message}\n${REPLAY}\n${String(error.cause ?? '')}`);
      });
    await annotate(`policy fuzz ${REPLAY}: ${JSON.stringify(tally)}`);
    // Not vacuous: allowed and denied decisions of every operation, and reads both served and refused.
    for (const key of ['read:allow', 'read:deny', 'list:allow', 'list:deny', 'write:allow', 'write:deny']) {
      expect(tally[key] ?? 0, `${key} ${JSON.stringify(tally)}`).toBeGreaterThan(0);
    }
    expect(tally.readOk ?? 0, JSON.stringify(tally)).toBeGreaterThan(0);
    expect(tally.readRefused ?? 0, JSON.stringify(tally)).toBeGreaterThan(0);
  }, 100_000);
});

// ---------------------------------------------------------------------------------------------
// (b) The tools end to end.

type Args = Record<string, unknown>;
type Command =
  | { readonly kind: 'call'; readonly tool: string; readonly args: Args }
  | {
      readonly kind: 'attack';
      readonly link: 'symlink' | 'hard';
      readonly slot: number;
      readonly target: number;
    }
  | { readonly kind: 'restore' };

interface Ledger {
  readonly tool: string;
  readonly args: Args;
  readonly requestId: string;
  /** Records its path decisions make: [fewest, most] (a directory move may add one refused carried entry). */
  readonly records: readonly [number, number];
}

describe('the tools, fuzzed end to end with links made on the fly and a directory swapped under the calls', () => {
  let cleanup: () => Promise<void> = async () => {};
  let tmp: string;
  let root: string;
  let outside: string;
  let server: TestServer | undefined;
  let client: Client | undefined;
  let swapper: Swapper | undefined;
  /** The request id of the last tools/call, as the server echoed it. */
  const last: { requestId?: string } = {};
  const lastRequestId = (): string | undefined => last.requestId;

  const SYMLINK_SLOTS = ['work/l0', 'work/l1.md', 'work/sub/l2'];
  const HARDLINK_SLOTS = ['work/h0.md', 'work/sub/h1.md'];
  /** Inside the root, excluded or unreadable: what no call may change, wherever links point. */
  const PROTECTED = [
    '.env',
    'credentials.json',
    '.git/config',
    '.git/HEAD.md',
    'docs/private.cfg',
    'work/.env',
    'work/id_rsa',
    'work/k.key/inner.md',
  ];

  beforeAll(async () => {
    const made = await tempDir('mcpd-fuzz-e2e-');
    cleanup = made.cleanup;
    tmp = made.dir;
    root = join(tmp, 'root');
    outside = join(tmp, 'outside');
    await writeTree(root, {
      'README.md': '# readme\n',
      'docs/guide.md': '# guide\n',
      'docs/private.cfg': `${UNREADABLE}\n`,
      'notes.txt': 'notes\n',
      '.env': `TOKEN=${SECRET}\n`,
      'credentials.json': `{"password":"${SECRET}"}\n`,
      '.git/config': `${SECRET}\n`,
      '.git/HEAD.md': `${SECRET}\n`,
      'work/a.md': 'fuzz a\n',
      'work/sub/b.md': 'fuzz b\n',
      'work/.env': `${SECRET}\n`,
      'work/id_rsa': `${SECRET}\n`,
      'work/k.key/inner.md': `${SECRET}\n`,
      'swap/s.md': 'swap s\n',
      'swap/sub/t.md': 'swap t\n',
      'links/placeholder.md': 'links\n',
    });
    await writeTree(outside, {
      'secret.md': `${OUTSIDE}\n`,
      '.env': `${OUTSIDE}\n`,
      'a.md': `${OUTSIDE}\n`,
      's.md': `${OUTSIDE}\n`,
      'sub/t.md': `${OUTSIDE}\n`,
      'dir/inner.md': `${OUTSIDE}\n`,
      [`${CANARY}.md`]: `${OUTSIDE}\n`,
      [`${CANARY}-dir/x.md`]: `${OUTSIDE}\n`,
    });
    await writeTree(join(tmp, 'groot'), { 'g.md': `${OTHER_ROOT}\n` });
    const links: [string, string][] = [
      ['links/out.md', join(outside, 'secret.md')],
      ['links/outdir', '../../outside'],
      ['links/env.md', '../.env'],
      ['links/c1.md', 'c2.md'],
      ['links/c2.md', 'c3.md'],
      ['links/c3.md', '../../outside/secret.md'],
      ['links/up', '../..'],
      ['links/to-g.md', join(tmp, 'groot', 'g.md')],
      ['work/outdir', outside],
      ['work/env-link.md', '../.env'],
      ['swaplink', outside],
    ];
    for (const [at, to] of links) await symlink(to, join(root, at));
    await link(join(root, '.env'), join(root, 'links/hard-env.md'));
    await link(join(outside, 'secret.md'), join(root, 'links/hard-out.md'));

    const config = join(tmp, 'fuzz.yaml');
    await writeFile(
      config,
      [
        'accessPolicy:',
        '  read: ["*.md", "*.txt"]',
        '  write: ["work/**/*", "swap/**/*", "swaplink/**/*"]',
        'roots:',
        '  - { name: E, uri: ./root }',
        '  - { name: G, uri: ./groot, write: [] }',
        'limits:',
        '  maxConcurrentPerPrincipal: 64',
        '  rateLimit: { perSecond: 1000000, burst: 1000000 }',
        'resources:',
        '  watch: false',
        '',
      ].join('\n'),
    );
    server = await startServer(config);
    // A real SDK client; its fetch notes the request id each call is audited under.
    const capture = async (url: string | URL, init?: RequestInit) => {
      const response = await fetch(url, init);
      const body = typeof init?.body === 'string' ? init.body : '';
      if (body.includes('"tools/call"')) last.requestId = response.headers.get('x-request-id') ?? undefined;
      return response;
    };
    client = new Client({ name: 'fuzzer', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { fetch: capture }));
    swapper = await startSwapper(join(root, 'swap'), join(root, 'swaplink'));
  });

  afterAll(async () => {
    await swapper?.stop().catch(() => {});
    await client?.close();
    await server?.close();
    await cleanup();
  });

  const names = [
    'README.md',
    'docs',
    'guide.md',
    'private.cfg',
    'notes.txt',
    '.env',
    '.ENV',
    'credentials.json',
    '.git',
    'config',
    'HEAD.md',
    'work',
    'a.md',
    'sub',
    'b.md',
    'id_rsa',
    'k.key',
    'inner.md',
    'swap',
    'swaplink',
    's.md',
    't.md',
    'links',
    'out.md',
    'outdir',
    'env.md',
    'c1.md',
    'c2.md',
    'c3.md',
    'up',
    'to-g.md',
    'hard-env.md',
    'hard-out.md',
    'env-link.md',
    'outdir',
    'l0',
    'l1.md',
    'l2',
    'h0.md',
    'h1.md',
    'new.md',
    'secret.md',
    'dir',
    'outside',
    'root',
    'groot',
    'g.md',
  ];

  const known = [
    'README.md',
    'docs',
    'docs/guide.md',
    'docs/private.cfg',
    'notes.txt',
    '.env',
    'work',
    'work/a.md',
    'work/sub',
    'work/sub/b.md',
    'work/.env',
    'work/new.md',
    'work/sub/new.md',
    'work/m1.md',
    'work/sub/m2.md',
    'work/newdir',
    'work/sub/newdir/x',
    'work/l0',
    'work/l0/secret.md',
    'work/l0/new.md',
    'work/l1.md',
    'work/sub/l2',
    'work/sub/l2/a.md',
    'work/h0.md',
    'work/sub/h1.md',
    'work/outdir',
    'work/outdir/secret.md',
    'work/outdir/new.md',
    'work/env-link.md',
    'swap',
    'swap/s.md',
    'swap/sub',
    'swap/sub/t.md',
    'swap/new.md',
    'swap/m3.md',
    'swap/d',
    'swaplink',
    'swaplink/s.md',
    'swaplink/sub/t.md',
    'links',
    'links/out.md',
    'links/outdir',
    'links/outdir/secret.md',
    'links/env.md',
    'links/c1.md',
    'links/up',
    'links/up/outside/secret.md',
    'links/up/groot/g.md',
    'links/to-g.md',
    'links/hard-env.md',
    'links/hard-out.md',
    'g.md',
  ];

  it(`runs ${E2E_RUNS} random call sequences: no answer holds an outside or secret byte, outside is untouched, one audit record per decision`, async ({
    annotate,
  }) => {
    if (!server || !client || !swapper) throw new Error('setup failed');
    const live = client;
    const rootUri = pathToFileURL(root).href;
    const bases = [root, root, root, root, tmp, join(tmp, 'groot'), outside];
    const hostile = pathSpecArb(names, known, bases.length).map((spec) => render(spec, bases).input);
    /** A path a call of this kind can succeed on, a third of the time; else a hostile one. */
    const pathFrom = (likely: readonly string[], hostility = 2) =>
      fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...likely) }, { weight: hostility, arbitrary: hostile });
    const READABLE = [
      'README.md',
      'docs/guide.md',
      'notes.txt',
      'work/a.md',
      'work/sub/b.md',
      'swap/s.md',
      'swap/sub/t.md',
      'swaplink/s.md',
      'links/c1.md',
      'links/env.md',
      'links/hard-out.md',
      'links/hard-env.md',
      'work/h0.md',
      'work/l1.md',
      'work/l0/secret.md',
      'g.md',
    ];
    const DIRECTORIES = [
      '',
      'docs',
      'work',
      'work/sub',
      'swap',
      'swaplink',
      'links',
      'links/outdir',
      'links/up',
      'work/l0',
    ];
    const FRESH = [
      'work/m1.md',
      'work/sub/m2.md',
      'swap/m3.md',
      'swaplink/m3.md',
      'work/moved',
      'swap/moved',
      'work/outdir/m.md',
      'work/l0/m.md',
      'links/m.md',
    ];
    const EDITABLE = [
      'work/a.md',
      'work/sub/b.md',
      'swap/s.md',
      'swaplink/s.md',
      'work/m1.md',
      'work/h0.md',
      'work/l1.md',
    ];
    const MOVABLE = [
      ...EDITABLE,
      ...FRESH,
      'work/sub',
      'work/newdir',
      'work/l0',
      'work/sub/h1.md',
      'swap/sub',
      'work/outdir',
      'work/env-link.md',
    ];
    /** A name that is most likely free, in a writable directory or behind a link. */
    const fresh = fc
      .tuple(
        fc.constantFrom(
          'work/m',
          'work/sub/m',
          'work/d',
          'swap/m',
          'swaplink/m',
          'work/outdir/m',
          'work/l0/m',
          'links/m',
        ),
        fc.nat({ max: 999 }),
        fc.constantFrom('.md', '.txt', '', '.env'),
      )
      .map(([prefix, n, suffix]) => `${prefix}${n}${suffix}`);
    /** What is there to move, most of the time (the restore command puts the first two back). */
    const MOVE_SOURCES = [
      'work/a.md',
      'work/a.md',
      'work/sub/b.md',
      'work/sub/b.md',
      'swap/s.md',
      'swaplink/s.md',
      'work/sub',
      'work/h0.md',
      'work/l0',
      'work/l1.md',
      'work/env-link.md',
      'work/outdir',
      'work/m1.md',
    ];
    const NEW_DIRECTORIES = [
      'work/newdir',
      'work/sub/newdir/x',
      'swap/d',
      'swaplink/d/e',
      'work/outdir/d',
      'work/l0/d',
    ];
    const rootArg = fc.constantFrom<string | undefined>(
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      'E',
      'G',
      'nope',
      rootUri,
    );
    const withRoot = (args: Args, r: string | undefined) => (r === undefined ? args : { ...args, root: r });
    const call = (tool: string, args: fc.Arbitrary<Args>): fc.Arbitrary<Command> =>
      args.map((a) => ({ kind: 'call' as const, tool, args: a }));
    const onePath = (likely: readonly string[], more: Args = {}) =>
      fc.tuple(pathFrom(likely), rootArg).map(([p, r]) => withRoot({ path: p, ...more }, r));

    const command: fc.Arbitrary<Command> = fc.oneof(
      call('read_file', onePath(READABLE)),
      call(
        'read_multiple_files',
        fc
          .tuple(fc.array(pathFrom(READABLE), { minLength: 1, maxLength: 4 }), rootArg)
          .map(([p, r]) => withRoot({ paths: p }, r)),
      ),
      call('get_file_info', onePath([...READABLE, ...DIRECTORIES])),
      call('process_large_dataset', onePath(READABLE)),
      call('list_directory', onePath(DIRECTORIES)),
      call('list_directory', onePath(DIRECTORIES, { details: true })),
      call('directory_tree', onePath(DIRECTORIES, { maxDepth: 5 })),
      call(
        'search_files',
        fc
          .tuple(
            fc.constantFrom('*.md', '**/*', 'secret', 'canary', 'env', '*'),
            fc.option(pathFrom(DIRECTORIES)),
            rootArg,
          )
          .map(([pattern, p, r]) => withRoot(p === null ? { pattern } : { pattern, path: p }, r)),
      ),
      call(
        'grep',
        fc
          .tuple(fc.constantFrom('.', 'MARKER', 'TOKEN', 'password'), fc.option(pathFrom(DIRECTORIES)), rootArg)
          .map(([pattern, p, r]) => withRoot(p === null ? { pattern } : { pattern, path: p }, r)),
      ),
      call(
        'write_file',
        fc
          .tuple(fc.oneof(fresh, pathFrom([...FRESH, ...EDITABLE])), fc.boolean(), rootArg)
          .map(([p, createOnly, r]) => withRoot({ path: p, content: 'fuzz write\n', createOnly }, r)),
      ),
      call(
        'edit_file',
        fc
          .tuple(pathFrom(EDITABLE, 1), fc.constantFrom('fuzz', 'e', 'TOKEN', 'swap', 'a'), fc.boolean(), rootArg)
          .map(([p, oldText, dryRun, r]) =>
            withRoot({ path: p, edits: [{ oldText, newText: 'edited', replaceAll: true }], dryRun }, r),
          ),
      ),
      call(
        'create_directory',
        fc
          .tuple(pathFrom(NEW_DIRECTORIES), fc.boolean(), rootArg)
          .map(([p, recursive, r]) => withRoot({ path: p, recursive }, r)),
      ),
      call(
        'move_file',
        fc
          .tuple(pathFrom(MOVE_SOURCES, 1), fc.oneof(fresh, hostile), rootArg)
          .map(([source, destination, r]) => withRoot({ source, destination }, r)),
      ),
      call('delete_file', onePath([...MOVABLE, ...NEW_DIRECTORIES])),
      fc.constant<Command>({ kind: 'restore' }),
      fc.record({
        kind: fc.constant('attack' as const),
        link: fc.constantFrom<'symlink' | 'hard'>('symlink', 'hard'),
        slot: fc.nat({ max: 5 }),
        target: fc.nat({ max: 100 }),
      }),
    );

    const symlinkTargets = [
      outside,
      join(outside, 'secret.md'),
      join(outside, `${CANARY}-dir`),
      '../.env',
      '../../outside',
      '../../../outside',
      '../links/c1.md',
      '../links/outdir',
      '../README.md',
      '..',
      '../..',
      '../swap',
      '../swaplink',
      'nowhere.md',
      join(tmp, 'groot'),
      '../docs/private.cfg',
      'l0',
      '../work/l0',
    ];
    const hardlinkSources = [
      join(outside, 'secret.md'),
      join(outside, '.env'),
      join(root, '.env'),
      join(root, 'credentials.json'),
      join(root, 'docs/private.cfg'),
      join(root, 'README.md'),
      join(tmp, 'groot', 'g.md'),
    ];

    /** The local attacker plants a link in the writable area, never through a link itself. */
    const attack = async (command: Extract<Command, { kind: 'attack' }>) => {
      const slots = command.link === 'symlink' ? SYMLINK_SLOTS : HARDLINK_SLOTS;
      const at = join(root, slots[command.slot % slots.length] as string);
      const parent = dirname(at);
      await mkdir(join(root, 'work'), { recursive: true });
      const parentIsReal = await realpath(parent).then(
        (real) => real === parent,
        () => false,
      );
      if (!parentIsReal) {
        const missing = await lstat(parent).then(
          () => false,
          () => true,
        );
        if (!missing || (await realpath(dirname(parent))) !== dirname(parent)) return;
        await mkdir(parent);
      }
      const existing = await lstat(at).catch(() => null);
      if (existing?.isDirectory()) return;
      await rm(at, { force: true });
      if (command.link === 'symlink') {
        await symlink(symlinkTargets[command.target % symlinkTargets.length] as string, at);
      } else {
        await link(hardlinkSources[command.target % hardlinkSources.length] as string, at);
      }
    };

    /** The local user puts back the files the calls move, edit and delete (never writing through a link). */
    const restore = async () => {
      for (const [at, contents] of [
        ['work/a.md', 'fuzz a\n'],
        ['work/sub/b.md', 'fuzz b\n'],
      ] as const) {
        const full = join(root, at);
        const parentIsReal = await realpath(dirname(full)).then(
          (real) => real === dirname(full),
          () => false,
        );
        const existing = await lstat(full).catch(() => null);
        if (!parentIsReal || existing?.isDirectory()) continue;
        // A fresh file: what is there may be a link (hard or symbolic) the calls moved into place.
        if (existing) await rm(full);
        await writeFile(full, contents, { flag: 'wx' });
      }
    };

    const rootsMatching = (r: unknown) => (r === undefined ? 2 : ['E', 'G', rootUri].includes(r as string) ? 1 : 0);
    const expectedRecords = (tool: string, args: Args): [number, number] => {
      switch (tool) {
        case 'edit_file':
          return [2, 2];
        case 'move_file':
          return [3, 4];
        case 'read_multiple_files':
          return [(args.paths as string[]).length, (args.paths as string[]).length];
        case 'search_files':
        case 'grep': {
          // Every start is a decision; a root the caller cannot see is one refused start.
          const n = args.path === undefined ? Math.max(1, rootsMatching(args.root)) : 1;
          return [n, n];
        }
        default:
          return [1, 1];
      }
    };

    /** Checksums of every file no call may read (process_large_dataset answers with one). */
    const forbiddenDigests = [
      ...Object.values(await snapshotTree(outside)).flatMap((entry) => entry.match(/sha256=([0-9a-f]{64})/)?.[1] ?? []),
      ...Object.values(await snapshotFiles(root, PROTECTED)).flatMap(
        (entry) => entry.match(/sha256=([0-9a-f]{64})/)?.[1] ?? [],
      ),
    ];
    expect(forbiddenDigests.length).toBeGreaterThan(PROTECTED.length);

    /**
     * A file with more than one link is another name of a file, maybe a secret: the root refuses
     * hard links, so whatever a read-side tool described or returned has exactly one (outside the
     * swapped directory, the path a call answers with is canonical, and nothing moves meanwhile).
     */
    const refusesSecondNames = async (tool: string, result: Record<string, unknown>, why: string) => {
      let described: string | undefined;
      if (tool === 'get_file_info') {
        const info = result.structuredContent as { root: string; path: string; type: string };
        if (info.root === 'E' && info.type === 'file') described = info.path;
      } else if (tool === 'read_file' || tool === 'process_large_dataset') {
        const content = result.content as { type: string; text?: string }[];
        const uri =
          tool === 'read_file'
            ? (JSON.parse(content[0]?.text ?? '{}') as { uri?: string }).uri
            : (result.structuredContent as { uri?: string }).uri;
        if (uri?.startsWith(`${rootUri}/`)) {
          described = uri
            .slice(rootUri.length + 1)
            .split('/')
            .map(decodeURIComponent)
            .join('/');
        }
      }
      if (described === undefined || /^swap(link)?(\/|$)/.test(described)) return;
      const stats = await lstat(join(root, described));
      expect(stats.nlink, `${why}: ${described} has ${stats.nlink} links`).toBe(1);
    };

    const ledger: Ledger[] = [];
    const outcomes: Record<string, number> = {};
    const protectedBefore = await snapshotFiles(root, PROTECTED);
    const outsideBefore = await snapshotTree(outside, { inodeTimes: false });

    try {
      await fc
        .assert(
          fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 3 }), async (commands) => {
            for (const command of commands) {
              if (command.kind === 'attack') {
                await attack(command);
                continue;
              }
              if (command.kind === 'restore') {
                await restore();
                continue;
              }
              last.requestId = undefined;
              const result = await live.callTool({ name: command.tool, arguments: command.args });
              const text = JSON.stringify(result);
              const why = `${command.tool} ${JSON.stringify(command.args)} -> ${text.slice(0, 800)}`;
              // Read through a function: the fetch above set it while the call ran.
              const requestId = lastRequestId();
              expect(requestId, `${why}: no request id`).toBeDefined();
              // The second root's contents are legitimate where a call may have named that root.
              const asked = decoded(JSON.stringify(command.args));
              const searchedAll =
                (command.tool === 'search_files' || command.tool === 'grep') && command.args.path === undefined;
              const mayShowG = command.args.root === 'G' || asked.includes('groot') || searchedAll;
              expect(leakIn(text, mayShowG), why).toBeUndefined();
              if (!asked.includes(outside)) expect(text, why).not.toContain(outside);
              for (const digest of forbiddenDigests)
                expect(text, `${why}: checksum of a forbidden file`).not.toContain(digest);
              if (!result.isError) await refusesSecondNames(command.tool, result, why);
              const code = (result._meta?.['dev.mcpd/error'] as { code?: string } | undefined)?.code;
              const outcome = `${command.tool}:${result.isError ? (code ?? 'error') : 'ok'}`;
              outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
              ledger.push({
                tool: command.tool,
                args: command.args,
                requestId: requestId as string,
                records: expectedRecords(command.tool, command.args),
              });
            }
          }),
          { numRuns: E2E_RUNS, seed: SEED, endOnFailure: true },
        )
        .catch((error: Error) => {
          throw new Error(`${error.message}\n${REPLAY}\n${String(error.cause ?? '')}`);
        });
    } finally {
      const report = await swapper.stop();
      outcomes.swaps = report.swaps;
    }
    outcomes.calls = ledger.length;
    await annotate(`end-to-end fuzz ${REPLAY}: ${JSON.stringify(outcomes)}`);
    // Not vacuous: the directory was swapped all along, every tool was called, and (given enough
    // cases) every tool both succeeded and failed.
    expect(outcomes.swaps, 'the directory was swapped under the calls').toBeGreaterThan(ledger.length);
    const tools = [...new Set(ledger.map((entry) => entry.tool))].sort();
    expect(tools, 'tools called').toHaveLength(13);
    for (const tool of E2E_RUNS >= 1000 ? tools : []) {
      const counts = Object.entries(outcomes).filter(([key]) => key.startsWith(`${tool}:`));
      const ok = counts.find(([key]) => key === `${tool}:ok`)?.[1] ?? 0;
      const failed = counts.reduce((sum, [key, n]) => sum + (key === `${tool}:ok` ? 0 : n), 0);
      expect(ok, `${tool} succeeded sometimes ${JSON.stringify(outcomes)}`).toBeGreaterThan(0);
      if (tool !== 'read_multiple_files') expect(failed, `${tool} failed sometimes`).toBeGreaterThan(0);
    }

    // Nothing outside changed (contents, names, directories), nor any excluded or unreadable file inside.
    expect(await snapshotTree(outside, { inodeTimes: false }), 'the outside tree').toEqual(outsideBefore);
    expect(await snapshotFiles(root, PROTECTED), 'excluded and unreadable files in the root').toEqual(protectedBefore);

    // Exactly the records of each call's path decisions, none of them allowing an excluded or outside path.
    await server.audit.flush();
    const least = ledger.reduce((sum, entry) => sum + entry.records[0], 0);
    await waitForAudit(server.auditFile, (r) => r.method === 'tools/call', least, 20_000);
    const records = (await readAudit(server.auditFile)).filter((r) => r.method === 'tools/call');
    const byRequest = new Map<string, AuditRecord[]>();
    for (const record of records) byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
    const wrong: string[] = [];
    for (const entry of ledger) {
      const mine = byRequest.get(entry.requestId) ?? [];
      byRequest.delete(entry.requestId);
      const [fewest, most] = entry.records;
      // A directory move's refused entry is recorded as it is found, before the move's own three.
      const carried = mine.filter((r) => r.requested.includes('(carried by the move of'));
      const own = mine.length - carried.length;
      const carriedOk = carried.length <= most - fewest && carried.every((r) => r.decision === 'deny');
      if (own !== fewest || !carriedOk || mine.some((r) => r.tool !== entry.tool)) {
        wrong.push(
          `${entry.tool} ${JSON.stringify(entry.args)}: expected ${fewest}-${most}, got ${JSON.stringify(mine)}`,
        );
      }
    }
    expect(wrong.slice(0, 5), `${wrong.length} calls without one record per path decision ${REPLAY}`).toEqual([]);
    expect([...byRequest.keys()], 'records of no call').toEqual([]);
    const badAllowed = records.filter((r) => {
      if (r.decision !== 'allow') return false;
      if (typeof r.path !== 'string' || r.path.startsWith('/') || r.path.split('/').includes('..')) return true;
      if (excludedByOracle(r.path) !== undefined) return true;
      const globs =
        r.root === 'E'
          ? { read: ['*.md', '*.txt'], write: ['work/**/*', 'swap/**/*', 'swaplink/**/*'] }
          : { read: ['*.md', '*.txt'], write: [] };
      if (r.rule.startsWith('read:') && !globsMatch(globs.read, r.path)) return true;
      if (r.rule.startsWith('write:') && !globsMatch(globs.write, r.path)) return true;
      return !['E', 'G'].includes(r.root ?? '');
    });
    expect(badAllowed, 'allowed records of excluded, unmatched or non-relative paths').toEqual([]);
    expect(
      records.filter((r) => typeof r.path === 'string' && r.path.startsWith('/')),
      'records naming a host path',
    ).toEqual([]);
  }, 100_000);
});

/** The text with percent-escapes decoded where they decode (for what a request may have named). */
function decoded(text: string): string {
  return text.replace(/(%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/** Contents and inode of each file (or its absence): what a call must never change. */
async function snapshotFiles(base: string, paths: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of paths) {
    const full = join(base, path);
    const stats = await lstat(full).catch(() => null);
    out[path] = stats
      ? `ino=${stats.ino} sha256=${createHash('sha256')
          .update(await readFile(full))
          .digest('hex')}`
      : 'missing';
  }
  return out;
}
