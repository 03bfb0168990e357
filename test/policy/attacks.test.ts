import { mkdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_EXCLUDES, type RootConfig } from '../../src/config/schema.js';
import { McpdError } from '../../src/errors.js';
import { readTarget } from '../../src/fs/files.js';
import { FileSystemWorkers } from '../../src/fs/fsWorkers.js';
import { NodePathResolver } from '../../src/fs/resolver.js';
import { canonicalizeRoots } from '../../src/fs/roots.js';
import type { SyscallWorkers } from '../../src/fs/syscalls.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import {
  ANONYMOUS,
  type Decision,
  type EntryKind,
  type Operation,
  type Root,
  type Target,
} from '../../src/policy/types.js';
import { allowedTarget } from '../helpers/policy.js';
import { tempDir, writeTree } from '../helpers/workspace.js';

/*
 * The policy attack table. Every case runs the real PolicyEngine over real directories and real
 * symbolic links in a temporary directory laid out like this:
 *
 *   <tmp>/data          root "Data"       read *.md *.txt *.json *.yaml config/*.conf, write workspace/**\/*
 *   <tmp>/templates     root "Templates"  read *.md, read-only
 *   <tmp>/linkroot      root "Linked"     a symlink to <tmp>/real-linked; read *.md, write *.md
 *   <tmp>/data2, <tmp>/data-old           siblings whose names share the prefix of "data"
 *   <tmp>/outside                         never inside any root
 *
 * Inputs are templates: {tmp}, {TMP} (upper-cased), {data}, {outside}, {templates}, {linkroot},
 * {realLinked} and {templatesUri} are replaced once the temporary directory exists.
 */

interface Fixture {
  tmp: string;
  data: string;
  outside: string;
  data2: string;
  dataOld: string;
  templates: string;
  linkroot: string;
  realLinked: string;
  policy: PolicyEngine;
  /** The same policy resolving paths through the file workers, as the server does. */
  quickPolicy: PolicyEngine;
  roots: Root[];
}

const fx = {} as Fixture;
const fsWorkers = new FileSystemWorkers(2);
const workers = fsWorkers.syscalls;
let cleanup: () => Promise<void> = async () => {};

const OUTSIDE_SECRET = 'OUTSIDE SECRET: must never be read through a root';

/** The configured excludes: the built-ins, the demo's three, and one anchored (slashed) pattern. */
const EXCLUDES = [...BUILTIN_EXCLUDES, '.env', 'credentials.*', '*.key', 'docs/internal/*'];

beforeAll(async () => {
  const made = await tempDir('mcpd-attacks-');
  cleanup = made.cleanup;
  const tmp = made.dir;
  Object.assign(fx, {
    tmp,
    data: join(tmp, 'data'),
    outside: join(tmp, 'outside'),
    data2: join(tmp, 'data2'),
    dataOld: join(tmp, 'data-old'),
    templates: join(tmp, 'templates'),
    linkroot: join(tmp, 'linkroot'),
    realLinked: join(tmp, 'real-linked'),
  });

  await writeTree(fx.outside, {
    'secret.md': OUTSIDE_SECRET,
    'file.md': OUTSIDE_SECRET,
    'sub/deep.md': OUTSIDE_SECRET,
  });
  await writeTree(fx.data2, { 'secret.md': OUTSIDE_SECRET });
  await writeTree(fx.dataOld, { 'secret.md': OUTSIDE_SECRET });
  await writeTree(fx.templates, { 'tpl.md': '# template' });
  await writeTree(fx.realLinked, { 'doc.md': '# linked doc', '.env': 'TOKEN=linked' });
  await writeTree(fx.data, {
    'README.md': '# readme',
    'docs/guide.md': '# guide',
    'docs/internal/plan.md': '# internal plan',
    'docs/deep/a/b/c/d.md': '# deep',
    'workspace/draft.md': '# draft',
    'workspace/existing/keep.md': '# keep',
    '.env': 'TOKEN=secret',
    '.env.local': 'TOKEN=local',
    'sub/dir/.env': 'TOKEN=nested',
    'credentials.yaml': 'password: hunter2',
    'credentials.json': '{"password":"hunter2"}',
    'a/b/id_rsa': 'PRIVATE KEY',
    'x.pem': 'PEM',
    'secret.key': 'KEY',
    '.git/config': '[core]',
    '.git/HEAD': 'ref: refs/heads/main',
    'keys.key/readme.md': '# hidden by its directory',
    'image.png': 'not really a png',
    'config/app.conf': 'x=1',
    'other/config/app.conf': 'x=2',
    'caf\u00e9.md': '# NFC name',
    'toctou/file.md': '# inside (directory swap)',
    'toctou-last/file.md': '# inside (last component swap)',
    'control/file.md': '# control',
  });

  const links: Array<[string, string]> = [
    ['links/to-outside-file.md', join(fx.outside, 'secret.md')],
    ['links/to-outside-dir', fx.outside],
    ['links/chain1.md', 'chain2.md'],
    ['links/chain2.md', 'chain3.md'],
    ['links/chain3.md', '../../outside/secret.md'],
    ['links/climb.md', '../../outside/secret.md'],
    ['links/climb-dir', '../../outside'],
    ['notes.md', '.env'],
    ['links/to-creds.md', '../credentials.yaml'],
    ['links/.env', '../README.md'],
    ['links/good.md', '../docs/guide.md'],
    ['links/good-chain.md', 'good.md'],
    ['links/loop-a', 'loop-b'],
    ['links/loop-b', 'loop-a'],
    ['links/self', 'self'],
    ['links/dangling.md', 'nowhere.md'],
    ['links/to-sibling.md', '../../data2/secret.md'],
    ['links/to-sibling-old.md', join(fx.dataOld, 'secret.md')],
    ['links/to-dot-git', '../.git'],
    ['links/to-root', '..'],
    ['links/to-parent', '../..'],
    ['links/to-etc', '/etc'],
    ['links/to-templates', '../../templates'],
    ['docs/deep/a/b/c/escape', '../../../../../../outside'],
    ['docs/deep/a/b/c/inside.md', '../../../../guide.md'],
    ['workspace/dangling.md', '../nowhere.md'],
    ['workspace/out-link.md', join(fx.outside, 'secret.md')],
    ['workspace/link-out', fx.outside],
    ['workspace/to-docs', '../docs'],
    ['workspace/dangling-dir', '../nowhere-dir'],
    ['workspace/loop', 'loop'],
  ];
  for (const [at, to] of links) {
    await mkdir(join(fx.data, at, '..'), { recursive: true });
    await symlink(to, join(fx.data, at));
  }
  await symlink('../outside/secret.md', join(fx.templates, 'escape.md'));
  await symlink('..', join(fx.realLinked, 'up'));
  await symlink('real-linked', fx.linkroot);

  const rootConfig = (name: string, path: string, read: string[], write: string[]): RootConfig => ({
    name,
    description: `${name} root`,
    uri: pathToFileURL(path).href,
    path,
    read,
    write,
    hardLinks: 'refuse',
  });
  const { roots, problems } = await canonicalizeRoots([
    rootConfig('Data', fx.data, ['*.md', '*.txt', '*.json', '*.yaml', 'config/*.conf'], ['workspace/**/*']),
    rootConfig('Templates', fx.templates, ['*.md'], []),
    rootConfig('Linked', fx.linkroot, ['*.md'], ['*.md']),
  ]);
  expect(problems).toEqual([]);
  expect(roots.map((root) => root.name)).toEqual(['Data', 'Templates', 'Linked']);
  fx.roots = roots;
  fx.policy = new PolicyEngine({ roots, exclude: EXCLUDES, resolver: new NodePathResolver() });
  fx.quickPolicy = new PolicyEngine({ roots, exclude: EXCLUDES, resolver: new NodePathResolver(workers) });
});

afterAll(async () => {
  await fsWorkers.close();
  await cleanup();
});

type Expected =
  | { allow: true; root?: string; relPath?: string; kind?: EntryKind; rule?: string }
  | { allow: false; rule: string };

interface Case {
  group: string;
  op: Operation;
  input: string;
  root?: string;
  expect: Expected;
}

const caseOf =
  (op: Operation) =>
  (input: string, expected: Expected, root?: string): Omit<Case, 'group'> => ({ op, input, root, expect: expected });
const read = caseOf('read');
const list = caseOf('list');
const write = caseOf('write');
const deny = (rule: string): Expected => ({ allow: false, rule });
const ok = (relPath?: string, kind?: EntryKind, rule?: string, root?: string): Expected => ({
  allow: true,
  relPath,
  kind,
  rule,
  root,
});
/** A name that does not exist, inside the root, readable by the *.md rule: allowed, and stays put. */
const okMissing = (relPath: string, root?: string): Expected => ok(relPath, 'missing', 'read:*.md', root);
const dir = (relPath: string, root?: string): Expected => ok(relPath, 'directory', 'list:contained', root);

const group = (name: string, cases: Array<Omit<Case, 'group'>>): Case[] => cases.map((c) => ({ ...c, group: name }));

const longRelative = `${'a/'.repeat(2048)}x.md`; // 4100 characters
const exactlyPathMax = `${'a/'.repeat(2047)}aa`; // 4096 characters: parses, but the host path is too long
const deepLegal = `${'d/'.repeat(200)}f.md`;

const CASES: Case[] = [
  ...group('dotdot, relative', [
    read('..', deny('containment:dotdot')),
    read('../', deny('containment:dotdot')),
    read('../outside/secret.md', deny('containment:dotdot')),
    read('../../etc/passwd', deny('containment:dotdot')),
    read('../data/README.md', deny('containment:dotdot')),
    read('../data2/secret.md', deny('containment:dotdot')),
    read('docs/../../outside/secret.md', deny('containment:dotdot')),
    read('docs/deep/../../../x.md', deny('containment:dotdot')),
    read('./../README.md', deny('containment:dotdot')),
    read('./docs/./../../x.md', deny('containment:dotdot')),
    read('docs/../..', deny('containment:dotdot')),
    read('docs/../docs/../../data/README.md', deny('containment:dotdot')),
    read(`${'a/'.repeat(50)}${'../'.repeat(51)}x.md`, deny('containment:dotdot')),
    read('../outside/secret.md', deny('containment:dotdot'), 'Templates'),
    read('../data/README.md', deny('containment:dotdot'), 'Templates'),
    read('../real-linked/doc.md', deny('containment:dotdot'), 'Linked'),
    write('../outside/new.md', deny('containment:dotdot')),
    write('workspace/../../outside/new.md', deny('containment:dotdot')),
    list('..', deny('containment:dotdot')),
    read('docs/..', dir('')),
    read('docs/../README.md', ok('README.md', 'file', 'read:*.md')),
    read('docs/deep/../guide.md', ok('docs/guide.md', 'file')),
    read('docs/./deep/.././guide.md', ok('docs/guide.md', 'file')),
    read('docs/guide.md/..', dir('docs')),
    read(`${'a/'.repeat(50)}${'../'.repeat(50)}README.md`, ok('README.md', 'file')),
    read('.', dir('')),
    read('./.', dir('')),
    read('', dir('')),
    read('...', deny('default-deny:read')),
    read('.../secret.md', okMissing('.../secret.md')),
    read('.. /secret.md', okMissing('.. /secret.md')),
  ]),
  ...group('dotdot, absolute paths and file URIs', [
    read('{data}/../outside/secret.md', deny('containment:outside-roots')),
    read('{data}/../data2/secret.md', deny('containment:outside-roots')),
    read('{data}/..', deny('containment:outside-roots')),
    read('{data}/../../../../../../../../etc/passwd', deny('containment:outside-roots')),
    read('/../../../etc/passwd', deny('containment:outside-roots')),
    read('{data}/docs/../README.md', ok('README.md', 'file')),
    read('{data}/../data/README.md', ok('README.md', 'file')),
    read('/../../..{data}/README.md', ok('README.md', 'file')),
    read('file://{data}/../outside/secret.md', deny('containment:outside-roots')),
    read('file://{data}/../../../../etc/passwd', deny('containment:outside-roots')),
    read('file://{data}/..', deny('containment:outside-roots')),
    read('file://{data}/docs/../README.md', ok('README.md', 'file')),
    read('file://{data}/docs/deep/../../README.md', ok('README.md', 'file')),
    read('file://{data}/./docs/./guide.md', ok('docs/guide.md', 'file')),
    write('{data}/workspace/../../outside/new.md', deny('containment:outside-roots')),
  ]),
  ...group('percent-encoding', [
    read('file://{data}/%2e%2e/outside/secret.md', deny('containment:outside-roots')),
    read('file://{data}/%2E%2E/data2/secret.md', deny('containment:outside-roots')),
    read('file://{data}/.%2e/.%2e/etc/passwd', deny('containment:outside-roots')),
    read('file://{data}/docs/%2e%2e/README.md', ok('README.md', 'file')),
    read('file://{data}/docs%2Fguide.md', deny('syntax:bad-uri')),
    read('file://{data}/..%2F..%2Foutside%2Fsecret.md', deny('syntax:bad-uri')),
    read('file://{data}/%2e%2e%2f%2e%2e%2fetc%2fpasswd', deny('syntax:bad-uri')),
    read('file://{data}/%00', deny('syntax:nul')),
    read('file://{data}/README.md%00.txt', deny('syntax:nul')),
    read('file://{data}/%2eenv', deny('exclude:.env')),
    read('file://{data}/.%65nv', deny('exclude:.env')),
    read('file://{data}/credentials%2Ejson', deny('exclude:credentials.*')),
    read('file://{data}/%252e%252e/%252e%252e/outside/secret.md', okMissing('%2e%2e/%2e%2e/outside/secret.md')),
    read('file://{data}/..%252F..%252Foutside%252Fsecret.md', okMissing('..%2F..%2Foutside%2Fsecret.md')),
    read('%2e%2e/%2e%2e/outside/secret.md', okMissing('%2e%2e/%2e%2e/outside/secret.md')),
    read('..%2F..%2Foutside%2Fsecret.md', okMissing('..%2F..%2Foutside%2Fsecret.md')),
    read('%252e%252e/secret.md', okMissing('%252e%252e/secret.md')),
    read('{data}/%2e%2e/outside/secret.md', okMissing('%2e%2e/outside/secret.md')),
    read('%2eenv', deny('default-deny:read')),
    // An encoded backslash is refused after decoding, exactly like a literal one.
    read('file://{data}/..%5c..%5coutside%5csecret.md', deny('syntax:backslash')),
  ]),
  ...group('schemes and hosts', [
    read('http://example.com/etc/passwd', deny('syntax:scheme')),
    read('https://localhost{data}/README.md', deny('syntax:scheme')),
    read('ftp://example.com/pub/secret.md', deny('syntax:scheme')),
    read('data:text/plain,secret', deny('syntax:scheme')),
    read('javascript:alert(1)', deny('syntax:scheme')),
    read('file+http://example.com/x', deny('syntax:scheme')),
    read('smb://server/share/secret.md', deny('syntax:scheme')),
    read('C:/Windows/system32/config', deny('syntax:scheme')),
    read('http://', deny('syntax:bad-uri')),
    read('file://evil.example/etc/passwd', deny('syntax:bad-uri')),
    read('file://evil.example{data}/README.md', deny('syntax:bad-uri')),
    read('file://127.0.0.1{data}/README.md', deny('syntax:bad-uri')),
    read('file://[::1]{data}/README.md', deny('syntax:bad-uri')),
    read('file://localhost{data}/README.md', ok('README.md', 'file')),
    read('file:{data}/README.md', ok('README.md', 'file')),
    read('FILE://{data}/README.md', ok('README.md', 'file')),
    read('file://{data}/.env?x=README.md', deny('exclude:.env')),
    read('file://{data}/README.md#/../../../etc/passwd', ok('README.md', 'file')),
    read('file://{data}/.e\tnv', deny('exclude:.env')),
    read('file:///etc/passwd', deny('containment:outside-roots')),
    read('file://{outside}/secret.md', deny('containment:outside-roots')),
  ]),
  ...group('absolute paths outside every root', [
    read('/etc/passwd', deny('containment:outside-roots')),
    read('/', deny('containment:outside-roots')),
    list('/', deny('containment:outside-roots')),
    read('{tmp}', deny('containment:outside-roots')),
    read('{tmp}/', deny('containment:outside-roots')),
    read('{outside}/secret.md', deny('containment:outside-roots')),
    read('{outside}', deny('containment:outside-roots')),
    read('/proc/self/root{data}/README.md', deny('containment:outside-roots')),
    read('/proc/self/cwd/package.json', deny('containment:outside-roots')),
    write('{outside}/new.md', deny('containment:outside-roots')),
    write('/etc/passwd', deny('containment:outside-roots')),
    read('{data}', dir('')),
    read('{data}/', dir('')),
    read('{data}/README.md', ok('README.md', 'file', 'read:*.md')),
    read('{outside}/secret.md', deny('containment:outside-roots'), 'Data'),
  ]),
  ...group('sibling prefixes', [
    read('{data}2/secret.md', deny('containment:outside-roots')),
    read('{data}2', deny('containment:outside-roots')),
    read('{data}-old/secret.md', deny('containment:outside-roots')),
    read('{tmp}/dat/secret.md', deny('containment:outside-roots')),
    read('file://{data}2/secret.md', deny('containment:outside-roots')),
    read('file://{data}-old/secret.md', deny('containment:outside-roots')),
    read('{templates}-evil/tpl.md', deny('containment:outside-roots')),
    read('{linkroot}2/doc.md', deny('containment:outside-roots')),
    write('{data}2/new.md', deny('containment:outside-roots')),
    read('links/to-sibling.md', deny('containment:symlink')),
    read('links/to-sibling-old.md', deny('containment:symlink')),
  ]),
  ...group('symlinks out of the root', [
    read('links/to-outside-file.md', deny('containment:symlink')),
    read('{data}/links/to-outside-file.md', deny('containment:symlink')),
    list('links/to-outside-dir', deny('containment:symlink')),
    read('links/to-outside-dir/secret.md', deny('containment:symlink')),
    read('links/to-outside-dir/sub/deep.md', deny('containment:symlink')),
    read('links/to-outside-dir/missing.md', deny('containment:symlink')),
    read('links/chain1.md', deny('containment:symlink')),
    read('links/chain3.md', deny('containment:symlink')),
    read('links/climb.md', deny('containment:symlink')),
    read('file://{data}/links/climb.md', deny('containment:symlink')),
    read('links/climb-dir/secret.md', deny('containment:symlink')),
    read('links/to-etc/passwd', deny('containment:symlink')),
    list('links/to-parent', deny('containment:symlink')),
    read('links/to-parent/data2/secret.md', deny('containment:symlink')),
    read('links/to-parent/outside/secret.md', deny('containment:symlink')),
    read('links/to-templates/tpl.md', deny('containment:symlink')),
    list('docs/deep/a/b/c/escape', deny('containment:symlink')),
    read('docs/deep/a/b/c/escape/secret.md', deny('containment:symlink')),
    read('escape.md', deny('containment:symlink'), 'Templates'),
    read('up/data2/secret.md', deny('containment:symlink'), 'Linked'),
    write('workspace/link-out/new.md', deny('containment:symlink')),
    write('links/to-outside-dir/new.md', deny('containment:symlink')),
  ]),
  ...group('symlinks that stay inside', [
    read('links/good.md', ok('docs/guide.md', 'file', 'read:*.md')),
    read('links/good-chain.md', ok('docs/guide.md', 'file')),
    read('docs/deep/a/b/c/inside.md', ok('docs/guide.md', 'file')),
    read('docs/deep/a/b/c/d.md', ok('docs/deep/a/b/c/d.md', 'file')),
    read('links/to-root/README.md', ok('README.md', 'file')),
    list('links/to-root', dir('')),
    read('links/to-parent/data/README.md', ok('README.md', 'file')),
    // ".." is applied to the text first, so it climbs the link's name, not its target.
    read('links/to-outside-dir/../README.md', okMissing('links/README.md')),
    write('workspace/to-docs/new.md', deny('default-deny:write')),
  ]),
  ...group('symlinks to excluded names', [
    read('notes.md', deny('exclude:.env')),
    read('links/to-creds.md', deny('exclude:credentials.*')),
    read('links/to-dot-git/config', deny('exclude:.git')),
    list('links/to-dot-git', deny('exclude:.git')),
    read('links/.env', deny('exclude:.env')),
  ]),
  ...group('loops and dangling links', [
    read('links/loop-a', deny('containment:loop')),
    read('links/loop-b', deny('containment:loop')),
    read('links/self', deny('containment:loop')),
    list('links/self', deny('containment:loop')),
    read('links/loop-a/x.md', deny('containment:loop')),
    write('workspace/loop/new.md', deny('containment:loop')),
    read('links/dangling.md', deny('containment:dangling-symlink')),
    read('links/dangling.md/x.md', deny('containment:dangling-symlink')),
    write('workspace/dangling-dir/new.md', deny('containment:dangling-symlink')),
    // Writes act on the final entry itself ('nofollow-last'): the link, not where it points.
    write('workspace/dangling.md', ok('workspace/dangling.md', 'symlink', 'write:workspace/**/*')),
    write('workspace/out-link.md', ok('workspace/out-link.md', 'symlink', 'write:workspace/**/*')),
    write('links/dangling.md', deny('default-deny:write')),
  ]),
  ...group('symlinked root', [
    read('doc.md', ok('doc.md', 'file', 'read:*.md', 'Linked'), 'Linked'),
    read('{linkroot}/doc.md', ok('doc.md', 'file', 'read:*.md', 'Linked')),
    read('{realLinked}/doc.md', ok('doc.md', 'file', 'read:*.md', 'Linked')),
    read('file://{linkroot}/doc.md', ok('doc.md', 'file', 'read:*.md', 'Linked')),
    list('{linkroot}', dir('', 'Linked')),
    read('.env', deny('exclude:.env'), 'Linked'),
    read('{realLinked}/.env', deny('exclude:.env')),
    write('new.md', ok('new.md', 'missing', 'write:*.md', 'Linked'), 'Linked'),
    write('sub/new.md', ok('sub/new.md', 'missing', 'write:*.md', 'Linked'), 'Linked'),
  ]),
  ...group('unicode look-alikes', [
    read('\uff0e\uff0e/outside/secret.md', okMissing('\uff0e\uff0e/outside/secret.md')),
    read('\uff0e\uff0e/\uff0e\uff0e/etc/passwd', deny('default-deny:read')),
    read('\u2025/outside/secret.md', okMissing('\u2025/outside/secret.md')),
    read('\u2024\u2024/outside/secret.md', okMissing('\u2024\u2024/outside/secret.md')),
    read('\ufe52\ufe52/outside/secret.md', okMissing('\ufe52\ufe52/outside/secret.md')),
    read('..\uff0f..\uff0foutside\uff0fsecret.md', okMissing('..\uff0f..\uff0foutside\uff0fsecret.md')),
    read('%c0%ae%c0%ae/outside/secret.md', okMissing('%c0%ae%c0%ae/outside/secret.md')),
    read('file://{data}/%c0%ae%c0%ae/outside/secret.md', deny('syntax:bad-uri')),
    read('file://{data}/%e0%80%ae%e0%80%ae/outside/secret.md', deny('syntax:bad-uri')),
    read('file://{data}/%ef%bc%8e%ef%bc%8e/outside/secret.md', okMissing('\uff0e\uff0e/outside/secret.md')),
    read('caf\u00e9.md', ok('caf\u00e9.md', 'file', 'read:*.md')),
    read('cafe\u0301.md', okMissing('cafe\u0301.md')),
    read('..\u200d/outside/secret.md', okMissing('..\u200d/outside/secret.md')),
    read('\u200b../outside/secret.md', okMissing('\u200b../outside/secret.md')),
    read('.\u200benv', deny('default-deny:read')),
    read('\u202e../outside/secret.md', okMissing('\u202e../outside/secret.md')),
    read('{data}/\u202e../../outside/secret.md', okMissing('outside/secret.md')),
    read('README\u202edm.md', okMissing('README\u202edm.md')),
    read('.\uff45\uff4e\uff56', deny('default-deny:read')),
  ]),
  ...group('long paths', [
    read(longRelative, deny('syntax:too-long')),
    read(`{data}/${longRelative}`, deny('syntax:too-long')),
    read(`file://{data}/${longRelative}`, deny('syntax:too-long')),
    read(exactlyPathMax, deny('containment:name-too-long')),
    read('x'.repeat(256), deny('syntax:too-long')),
    read(`docs/${'x'.repeat(256)}.md`, deny('syntax:too-long')),
    read(`${'\u00e9'.repeat(127)}.md`, deny('syntax:too-long')),
    read(`${'x'.repeat(252)}.md`, okMissing(`${'x'.repeat(252)}.md`)),
    read(deepLegal, okMissing(deepLegal)),
  ]),
  ...group('trailing slashes and dots', [
    read('README.md/', ok('README.md', 'file')),
    read('README.md/.', ok('README.md', 'file')),
    read('README.md/..', dir('')),
    read('docs/', dir('docs')),
    read('docs/.', dir('docs')),
    list('docs', dir('docs')),
    read('.env/', deny('exclude:.env')),
    read('.env.', deny('exclude:.env.*')),
    read('.env/.', deny('exclude:.env')),
    read('credentials.json/.', deny('exclude:credentials.*')),
    read('README.md.', deny('default-deny:read')),
    read('README.md/x', deny('not-found:not-a-directory')),
    write('workspace/draft.md/new.md', deny('not-found:not-a-directory')),
  ]),
  ...group('case variants', [
    read('.ENV', deny('exclude:.env')),
    read('.Env', deny('exclude:.env')),
    read('sub/DIR/.eNv', deny('exclude:.env')),
    read('CREDENTIALS.JSON', deny('exclude:credentials.*')),
    read('Secret.KEY', deny('exclude:*.key')),
    read('X.PEM', deny('exclude:*.pem')),
    read('A/B/ID_RSA', deny('exclude:id_rsa*')),
    read('.GIT/config', deny('exclude:.git')),
    read('{TMP}/data/README.md', deny('containment:outside-roots')),
    read('{tmp}/DATA/README.md', deny('containment:outside-roots')),
    read('{tmp}/Data/README.md', deny('containment:outside-roots')),
    read('file://{tmp}/DATA/README.md', deny('containment:outside-roots')),
    read('{tmp}/TEMPLATES/tpl.md', deny('containment:outside-roots')),
  ]),
  ...group('NUL bytes', [
    read('\0', deny('syntax:nul')),
    read('README.md\0', deny('syntax:nul')),
    read('\0README.md', deny('syntax:nul')),
    read('docs/\0/guide.md', deny('syntax:nul')),
    read('.env\0.md', deny('syntax:nul')),
    read('{data}/README.md\0.txt', deny('syntax:nul')),
    read('file://{data}/README.md\0', deny('syntax:nul')),
    write('workspace/new.md\0', deny('syntax:nul')),
  ]),
  ...group('empty segments', [
    read('a//b', deny('syntax:empty-segment')),
    read('//etc', deny('syntax:empty-segment')),
    read('//etc/passwd', deny('syntax:empty-segment')),
    read('docs//guide.md', deny('syntax:empty-segment')),
    read('docs//', deny('syntax:empty-segment')),
    read('README.md//', deny('syntax:empty-segment')),
    read('/{data}/README.md', deny('syntax:empty-segment')),
    read('{data}//README.md', deny('syntax:empty-segment')),
    read('file:////etc/passwd', deny('syntax:empty-segment')),
  ]),
  ...group('backslashes', [
    read('..\\..\\etc\\passwd', deny('syntax:backslash')),
    read('docs\\guide.md', deny('syntax:backslash')),
    read('\\\\server\\share\\secret.md', deny('syntax:backslash')),
    read('{data}\\..\\outside\\secret.md', deny('syntax:backslash')),
    read('file://{data}/..\\..\\outside\\secret.md', deny('syntax:backslash')),
  ]),
  ...group('excludes at any depth', [
    read('.env', deny('exclude:.env')),
    read('sub/dir/.env', deny('exclude:.env')),
    read('.env.local', deny('exclude:.env.*')),
    read('docs/.env.production', deny('exclude:.env.*')),
    read('credentials.yaml', deny('exclude:credentials.*')),
    read('credentials.json', deny('exclude:credentials.*')),
    read('deep/er/credentials.md', deny('exclude:credentials.*')),
    read('a/b/id_rsa', deny('exclude:id_rsa*')),
    read('a/b/id_rsa.pub', deny('exclude:id_rsa*')),
    read('id_ed25519', deny('exclude:id_ed25519*')),
    read('x.pem', deny('exclude:*.pem')),
    read('deep/x.pfx', deny('exclude:*.pfx')),
    read('secret.key', deny('exclude:*.key')),
    read('.mcpd-tmp-123', deny('exclude:.mcpd-tmp-*')),
    list('.git', deny('exclude:.git')),
    read('.git/config', deny('exclude:.git')),
    read('.git/HEAD', deny('exclude:.git')),
    read('{data}/.git/config', deny('exclude:.git')),
    list('keys.key', deny('exclude:*.key')),
    read('keys.key/readme.md', deny('exclude:*.key')),
    read('sub/.git/objects/ab/cdef.md', deny('exclude:.git')),
    // Anchored (slashed) excludes must hide exactly that place, and only that place.
    read('docs/internal/plan.md', deny('exclude:docs/internal/*')),
    read('other/docs/internal/plan.md', okMissing('other/docs/internal/plan.md')),
  ]),
  ...group('read rules', [
    read('image.png', deny('default-deny:read')),
    read('docs/guide.md~', deny('default-deny:read')),
    read('README.md\n', deny('default-deny:read')),
    read('config/app.conf', ok('config/app.conf', 'file', 'read:config/*.conf')),
    read('other/config/app.conf', deny('default-deny:read')),
    read('docs', dir('docs')),
    read('tpl.md', ok('tpl.md', 'file', 'read:*.md', 'Templates'), 'Templates'),
  ]),
  ...group('write rules', [
    write('workspace/new.md', ok('workspace/new.md', 'missing', 'write:workspace/**/*')),
    write('workspace/draft.md', ok('workspace/draft.md', 'file', 'write:workspace/**/*')),
    write('workspace/existing/keep.md', ok('workspace/existing/keep.md', 'file', 'write:workspace/**/*')),
    write('workspace/newdir/deeper/new.md', ok('workspace/newdir/deeper/new.md', 'missing', 'write:workspace/**/*')),
    write('file://{data}/workspace/new.md', ok('workspace/new.md', 'missing', 'write:workspace/**/*')),
    write('README.md', deny('default-deny:write')),
    write('docs/new.md', deny('default-deny:write')),
    write('new.md', deny('default-deny:write')),
    write('', deny('write:root-itself')),
    write('.', deny('write:root-itself')),
    write('docs/..', deny('write:root-itself')),
    write('{data}', deny('write:root-itself')),
    write('workspace/.env', deny('exclude:.env')),
    write('workspace/sub/id_rsa', deny('exclude:id_rsa*')),
    write('workspace/.git/hooks/pre-commit', deny('exclude:.git')),
    write('workspace/Credentials.TXT', deny('exclude:credentials.*')),
    write('tpl.md', deny('read-only-root'), 'Templates'),
    write('new.md', deny('read-only-root'), 'Templates'),
    write('{templates}/sub/new.md', deny('read-only-root')),
    // The root of a symlinked root is still the root: the engine must not judge the configured link
    // itself (which lies outside the canonical root) instead of the directory it names.
    write('', deny('write:root-itself'), 'Linked'),
  ]),
  ...group('root hints', [
    read('README.md', deny('unknown-root'), 'Nope'),
    read('README.md', deny('unknown-root'), 'file:///nope'),
    read('README.md', deny('unknown-root'), 'data'),
    read('tpl.md', deny('unknown-root'), 'templates'),
    write('workspace/new.md', deny('unknown-root'), 'Nope'),
    read('tpl.md', ok('tpl.md', 'file', 'read:*.md', 'Templates'), '{templatesUri}'),
    read('tpl.md', ok('tpl.md', 'file', 'read:*.md', 'Templates'), '{templatesUri}/'),
    read('{data}/README.md', ok('README.md', 'file', 'read:*.md', 'Data'), 'Nope'),
    read('README.md', okMissing('README.md', 'Templates'), 'Templates'),
  ]),
];

function fill(template: string): string {
  return template
    .replaceAll('{tmp}', fx.tmp)
    .replaceAll('{TMP}', fx.tmp.toUpperCase())
    .replaceAll('{data}', fx.data)
    .replaceAll('{outside}', fx.outside)
    .replaceAll('{templatesUri}', pathToFileURL(fx.templates).href)
    .replaceAll('{templates}', fx.templates)
    .replaceAll('{linkroot}', fx.linkroot)
    .replaceAll('{realLinked}', fx.realLinked);
}

/** Printable test titles: control and non-ASCII characters escaped, very long inputs shortened. */
function show(text: string): string {
  const escaped = [...text]
    .map((ch) => (ch >= ' ' && ch <= '~' ? ch : `\\u{${ch.codePointAt(0)?.toString(16)}}`))
    .join('');
  return escaped.length > 90 ? `${escaped.slice(0, 60)}...(${text.length} chars)` : escaped;
}

const TABLE = CASES.map((c, index) => ({
  ...c,
  title: `#${index + 1} [${c.group}] ${c.op} "${show(c.input)}"${c.root ? ` @${show(c.root)}` : ''} -> ${
    c.expect.allow ? 'allow' : c.expect.rule
  }`,
}));

/** Host paths no denial may ever mention: everything that is not inside a root. */
function forbiddenHostPaths(): string[] {
  return [fx.outside, fx.data2, fx.dataOld];
}

function rootOf(name: string): Root {
  const root = fx.roots.find((r) => r.name === name);
  if (!root) throw new Error(`no root ${name}`);
  return root;
}

function checkInvariants(decision: Decision): void {
  if (decision.allow) {
    const root = rootOf(decision.root);
    const { absPath, uri, relPath } = decision.target;
    expect(decision.target.root).toBe(root);
    // Containment of every allowed target: the canonical path is the root or beneath it.
    expect(absPath === root.canonicalPath || absPath.startsWith(`${root.canonicalPath}/`)).toBe(true);
    expect(absPath).toBe(relPath === '' ? root.canonicalPath : `${root.canonicalPath}/${relPath}`);
    expect(relPath.startsWith('/')).toBe(false);
    expect(relPath.split('/')).not.toContain('..');
    expect(uri === root.uri || uri.startsWith(`${root.uri}/`)).toBe(true);
    for (const outside of forbiddenHostPaths()) {
      expect(absPath === outside || absPath.startsWith(`${outside}/`)).toBe(false);
    }
    return;
  }
  // Denials: nothing about a host path outside a root leaks into what a client may be shown.
  for (const field of [decision.reason, decision.uri ?? '', decision.path ?? '']) {
    for (const hostPath of forbiddenHostPaths()) expect(field).not.toContain(hostPath);
    expect(field).not.toContain(fx.tmp.toUpperCase());
  }
  expect(decision.reason).not.toContain(fx.tmp);
  if (decision.path !== null) expect(decision.path.startsWith('/')).toBe(false);
  if (decision.root === null) {
    expect(decision.uri).toBeNull();
    expect(decision.path).toBeNull();
  }
  if (decision.uri !== null) {
    const root = rootOf(decision.root ?? '');
    expect(decision.uri === root.uri || decision.uri.startsWith(`${root.uri}/`)).toBe(true);
  }
}

describe('policy attack table', () => {
  it('has at least 120 distinct cases', () => {
    const keys = new Set(CASES.map((c) => JSON.stringify([c.op, c.input, c.root ?? null])));
    expect(keys.size).toBe(CASES.length);
    expect(CASES.length).toBeGreaterThanOrEqual(120);
  });

  const resolvers = ['through fs/promises', 'through the file workers'] as const;
  it.each(resolvers.flatMap((how) => TABLE.map((c) => [c.title, how, c] as const)))(
    '%s (%s)',
    async (_title, how, c) => {
      const policy = how === 'through the file workers' ? fx.quickPolicy : fx.policy;
      const decision = await policy.decide(ANONYMOUS, c.op, fill(c.input), c.root ? { root: fill(c.root) } : {});
      const expected = c.expect;
      if (expected.allow) {
        const actual = decision.allow
          ? {
              allow: true,
              root: decision.root,
              relPath: decision.target.relPath,
              kind: decision.target.kind,
              rule: decision.rule,
            }
          : { allow: false, rule: decision.rule };
        expect(actual).toMatchObject({
          allow: true,
          root: expected.root ?? 'Data',
          ...(expected.relPath !== undefined ? { relPath: expected.relPath } : {}),
          ...(expected.kind !== undefined ? { kind: expected.kind } : {}),
          ...(expected.rule !== undefined ? { rule: expect.stringMatching(`^${escapeRegExp(expected.rule)}`) } : {}),
        });
      } else {
        expect({ allow: decision.allow, rule: decision.rule }).toMatchObject({
          allow: false,
          rule: expect.stringMatching(`^${escapeRegExp(expected.rule)}`),
        });
      }
      expect(decision.op).toBe(c.op);
      checkInvariants(decision);
    },
  );
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('check-then-use: a directory swapped for a symlink after the decision', () => {
  const whole = { range: { kind: 'whole' as const }, maxBytes: 1e6 };

  /**
   * Reads a target swapped for a link after its decision, through a descriptor here and through a
   * file worker: refused both ways, and never the outside content.
   */
  async function expectReadRefused(target: Target, swapped: string): Promise<McpdError> {
    await expectRefused(target, swapped, workers);
    return expectRefused(target, swapped);
  }

  async function expectRefused(target: Target, swapped: string, through?: SyscallWorkers): Promise<McpdError> {
    const outcome = await readTarget(target, whole, through).then(
      (result) => ({ ok: true as const, result }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (outcome.ok) {
      const text = outcome.result.kind === 'text' ? outcome.result.text : outcome.result.data.toString('utf8');
      expect(text).not.toContain('OUTSIDE SECRET');
      throw new Error(`readTarget returned content through a swapped ${swapped}`);
    }
    expect(outcome.error).toBeInstanceOf(McpdError);
    expect((outcome.error as McpdError).code).toBe('NOT_FOUND_OR_DENIED');
    return outcome.error as McpdError;
  }

  it('reads an untouched allowed file (control)', async () => {
    const result = await readTarget(await allowedTarget(fx.policy, 'read', 'control/file.md'), whole);
    expect(result.kind === 'text' ? result.text : null).toBe('# control');
  });

  it('refuses to read through a parent directory replaced by a link to outside', async () => {
    const target = await allowedTarget(fx.policy, 'read', 'toctou/file.md');
    expect(target.absPath).toBe(join(fx.data, 'toctou/file.md'));

    await rename(join(fx.data, 'toctou'), join(fx.data, 'toctou-orig'));
    await symlink(fx.outside, join(fx.data, 'toctou'));

    const error = await expectReadRefused(target, 'directory');
    expect(error.message).not.toContain(fx.outside);

    // And a fresh decision now sees the link.
    const again = await fx.policy.decide(ANONYMOUS, 'read', 'toctou/file.md');
    expect(again).toMatchObject({ allow: false, rule: 'containment:symlink' });
  });

  it('refuses to read a final component replaced by a link to outside', async () => {
    const target = await allowedTarget(fx.policy, 'read', 'toctou-last/file.md');

    await rm(join(fx.data, 'toctou-last/file.md'));
    await symlink(join(fx.outside, 'file.md'), join(fx.data, 'toctou-last/file.md'));

    await expectReadRefused(target, 'file');
  });

  it('leaves the outside file untouched', async () => {
    expect(await readFile(join(fx.outside, 'file.md'), 'utf8')).toBe(OUTSIDE_SECRET);
  });
});
