import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/workspace.js';

/**
 * The layering of DESIGN.md, held by a test: who may import whom, who may touch files, and who
 * may write to stdout (in stdio mode it is the protocol channel).
 */

interface Source {
  readonly path: string; // relative to src/, POSIX
  readonly text: string;
  readonly imports: string[];
}

const SRC = join(REPO, 'src');

async function sources(dir = SRC): Promise<Source[]> {
  const out: Source[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) {
      const text = await readFile(full, 'utf8');
      const imports = [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g)].map(
        (m) => (m[1] ?? m[2]) as string,
      );
      out.push({ path: relative(SRC, full).split('\\').join('/'), text, imports });
    }
  }
  return out;
}

/** The layer a file belongs to: its top folder under src/, or the file itself at the top. */
function layerOf(path: string): string {
  return path.includes('/') ? (path.split('/')[0] as string) : path.replace(/\.ts$/, '');
}

/** Internal layer a relative import lands in, seen from `from`. */
function targetLayer(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const parts = from.split('/').slice(0, -1);
  for (const segment of specifier.split('/')) {
    if (segment === '..') parts.pop();
    else if (segment !== '.') parts.push(segment);
  }
  return layerOf(parts.join('/').replace(/\.js$/, '.ts'));
}

/** Which layers each layer may import (besides itself and the shared leaves: the error catalogue, the glob language). */
const ALLOWED: Record<string, readonly string[]> = {
  config: [],
  policy: ['config'],
  fs: ['policy', 'config'],
  audit: [],
  access: ['policy', 'fs', 'audit', 'config', 'ops'],
  mcp: ['access', 'audit', 'config', 'fs', 'policy', 'ops'],
  auth: ['config', 'policy'],
  cluster: [],
  // The edge authenticates and limits; config and policy only for their types (Config, Principal).
  http: ['mcp', 'ops', 'auth', 'cluster', 'config', 'policy'],
  ops: [],
  errors: [],
  globs: [],
};

const FS_MODULES = new Set(['node:fs', 'node:fs/promises', 'fs', 'fs/promises']);
/** Files outside fs/ allowed to touch the file system, by name: the config loader reads its own file. */
const FS_EXCEPTIONS = new Set(['config/load.ts']);

describe('layering', () => {
  let files: Source[];
  beforeAll(async () => {
    files = await sources();
    expect(files.length).toBeGreaterThan(20);
  });

  it('each layer imports only the layers below it', () => {
    const violations: string[] = [];
    for (const file of files) {
      const layer = layerOf(file.path);
      const allowed = ALLOWED[layer];
      if (!allowed) continue; // main.ts, app.ts, services.ts compose everything
      for (const specifier of file.imports) {
        const target = targetLayer(file.path, specifier);
        if (target === undefined || target === layer || target === 'errors' || target === 'globs') continue;
        if (!allowed.includes(target)) violations.push(`${file.path} imports ${specifier} (${layer} -> ${target})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('only fs/ touches the file system (the config loader aside, by name)', () => {
    const offenders = files
      .filter((file) => !file.path.startsWith('fs/') && !FS_EXCEPTIONS.has(file.path))
      .filter((file) => file.imports.some((specifier) => FS_MODULES.has(specifier) || specifier === 'chokidar'))
      .map((file) => file.path);
    expect(offenders).toEqual([]);
  });

  it('only the audit file sink opens audit files (through sonic-boom)', () => {
    const users = files.filter((file) => file.imports.includes('sonic-boom')).map((file) => file.path);
    expect(users).toEqual(['audit/sink.ts']);
  });

  it('nothing writes to stdout but the stdio transport: no console, process only in main.ts', () => {
    const consoleUsers = files.filter((file) => /\bconsole\.\w+\(/.test(file.text)).map((file) => file.path);
    expect(consoleUsers).toEqual([]);
    const processUsers = files.filter((file) => /\bprocess\.\w+/.test(file.text)).map((file) => file.path);
    expect(processUsers).toEqual(['main.ts']);
    const stdoutUsers = files.filter((file) => file.text.includes('process.stdout')).map((file) => file.path);
    expect(stdoutUsers).toEqual(['main.ts']);
  });

  it('the SDK serving entries sit behind one seam', () => {
    const entryUsers = files
      .filter((file) => /\b(createMcpHandler|serveStdio)\(/.test(file.text))
      .map((file) => file.path)
      .sort();
    expect(entryUsers).toEqual(['mcp/endpoint.ts', 'mcp/stdio.ts']);
    // Tools never see the SDK: they get a ToolContext.
    const toolsUsingSdk = files
      .filter((file) => file.path.startsWith('mcp/tools/'))
      .filter((file) =>
        file.imports.some(
          (specifier) => specifier.startsWith('@modelcontextprotocol/') && !file.text.includes('import type'),
        ),
      )
      .map((file) => file.path);
    expect(toolsUsingSdk).toEqual([]);
  });

  it('tools reach files only through the access gate', () => {
    const direct = files
      .filter((file) => file.path.startsWith('mcp/tools/'))
      .filter((file) =>
        /\b(readTarget|readChunks|statTarget|writeFileAtomic|deleteEntry|moveEntry|createDirectory|visibleChildren|grep|searchNames|tree)\(/.test(
          file.text,
        ),
      )
      .filter((file) => !file.text.includes('gate.access'))
      .map((file) => file.path);
    expect(direct).toEqual([]);
  });
});
