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

/** Where a relative import lands, as a path under src/ without the extension. */
function targetPath(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const parts = from.split('/').slice(0, -1);
  for (const segment of specifier.split('/')) {
    if (segment === '..') parts.pop();
    else if (segment !== '.') parts.push(segment);
  }
  return parts.join('/').replace(/\.js$/, '');
}

interface LayerRule {
  /** The layers (or single modules, such as `policy/types`) this layer may import. */
  readonly imports: ReadonlySet<string> | 'everything';
  readonly touchesFiles: boolean;
}

/**
 * The layering table of docs/architecture.md, the one place it is written: module, job, what it
 * may import, and whether it touches the file system.
 */
async function layeringTable(): Promise<Map<string, LayerRule>> {
  const doc = await readFile(join(REPO, 'docs/architecture.md'), 'utf8');
  const table = doc.split('<!-- layers:start -->')[1]?.split('<!-- layers:end -->')[0];
  if (!table) throw new Error('docs/architecture.md has no layers table');
  const layers = new Map<string, LayerRule>();
  const named = (cell: string) =>
    [...cell.matchAll(/`([^`]+)`/g)].map((m) => (m[1] as string).replace(/\/$|\.ts$/g, ''));
  const all = new Set<string>();
  const rows = table
    .split('\n')
    .filter((line) => line.startsWith('|') && !line.startsWith('| module') && !line.startsWith('| ---'))
    .map((line) => line.split('|').map((cell) => cell.trim()));
  for (const [, module] of rows) for (const name of named(module ?? '')) all.add(name);
  for (const [, module, , imports = '', files = ''] of rows) {
    const allowed =
      imports === 'everything'
        ? 'everything'
        : imports.startsWith('everything but')
          ? new Set([...all].filter((name) => !named(imports).includes(name)))
          : new Set(named(imports));
    for (const name of named(module ?? '')) layers.set(name, { imports: allowed, touchesFiles: files !== 'no' });
  }
  return layers;
}

const FS_MODULES = new Set(['node:fs', 'node:fs/promises', 'fs', 'fs/promises']);

describe('layering', () => {
  let files: Source[];
  let table: Map<string, LayerRule>;
  beforeAll(async () => {
    files = await sources();
    table = await layeringTable();
    expect(files.length).toBeGreaterThan(20);
    expect(table.size).toBeGreaterThan(10);
  });

  it('every file belongs to a row of the table', () => {
    expect(files.map((file) => file.path).filter((path) => !table.has(layerOf(path)))).toEqual([]);
  });

  it('each module imports only what its row allows', () => {
    const violations: string[] = [];
    for (const file of files) {
      const layer = layerOf(file.path);
      const rule = table.get(layer);
      if (!rule || rule.imports === 'everything') continue;
      for (const specifier of file.imports) {
        const target = targetPath(file.path, specifier);
        if (target === undefined) continue;
        const targetLayer = layerOf(`${target}.ts`);
        if (targetLayer === layer) continue;
        // A row may allow one module of a layer (policy/types) without the rest of it.
        if (rule.imports.has(targetLayer) || rule.imports.has(target)) continue;
        violations.push(`${file.path} imports ${specifier} (${layer} -> ${target})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('only the layers whose row says so touch the file system', () => {
    const offenders = files
      .filter((file) => !table.get(layerOf(file.path))?.touchesFiles)
      .filter((file) => file.imports.some((specifier) => FS_MODULES.has(specifier) || specifier === 'chokidar'))
      .map((file) => file.path);
    expect(offenders).toEqual([]);
  });

  it('only the audit file sink opens audit files (through sonic-boom)', () => {
    const users = files.filter((file) => file.imports.includes('sonic-boom')).map((file) => file.path);
    expect(users).toEqual(['audit/sink.ts']);
  });

  it('nothing writes to stdout but the stdio transport: no console, process only in cli/process.ts', () => {
    const consoleUsers = files.filter((file) => /\bconsole\.\w+\(/.test(file.text)).map((file) => file.path);
    expect(consoleUsers).toEqual([]);
    // `process.` as code, not a module name such as cli/process.js.
    const processUsers = files
      .filter((file) => /(^|[^/\w.])process\.(?!ts\b|js\b)\w+/m.test(file.text))
      .map((file) => file.path);
    expect(processUsers).toEqual(['cli/process.ts']);
    const stdoutUsers = files.filter((file) => file.text.includes('process.stdout')).map((file) => file.path);
    expect(stdoutUsers).toEqual(['cli/process.ts']);
  });

  it('the SDK serving entries sit in the transport adapters, one each', () => {
    const entryUsers = files
      .filter((file) => /\b(createMcpHandler|serveStdio)\(/.test(file.text))
      .map((file) => file.path)
      .sort();
    expect(entryUsers).toEqual(['http/referenceHandler.ts', 'stdio/connection.ts']);
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

  it('tools and resource handlers reach files only through the audited file API', () => {
    // Enforced by the table (mcp/ may not import fs/ or the policy engine); checked here by name too.
    const direct = files
      .filter((file) => file.path.startsWith('mcp/'))
      .filter((file) => file.imports.some((specifier) => /\/(fs|policy)\/(?!types\.js$)/.test(specifier)))
      .map((file) => file.path);
    expect(direct).toEqual([]);
  });
});
