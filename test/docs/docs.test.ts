import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyRegions, configRows, docFiles, REPO, readDoc, renderRegions } from '../../scripts/docs/generate.js';

/** Lines outside fenced code blocks, with their line numbers. */
function prose(text: string): { line: string; number: number }[] {
  const out: { line: string; number: number }[] = [];
  let fenced = false;
  text.split('\n').forEach((line, index) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return;
    }
    if (!fenced) out.push({ line, number: index + 1 });
  });
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { line } of prose(text)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading?.[1]) continue;
    const base = slug(heading[1]);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

/** Every inline link target of a page, outside code blocks and code spans. */
function links(text: string): { target: string; number: number }[] {
  const out: { target: string; number: number }[] = [];
  for (const { line, number } of prose(text)) {
    const bare = line.replace(/`[^`]*`/g, (span) => ' '.repeat(span.length));
    for (const match of bare.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (match[1]) out.push({ target: match[1], number });
    }
  }
  return out;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** Where a relative link leads: the repo-relative file (or the page itself) and the anchor. */
function resolveLink(from: string, target: string): { file: string; anchor: string | undefined } {
  const [path = '', anchor] = target.split('#', 2);
  const file = path === '' ? from : normalize(join(dirname(from), decodeURIComponent(path)));
  return { file, anchor };
}

/** Rendered once for the whole file (it builds a metric registry, among others). */
let rendering: ReturnType<typeof renderRegions> | undefined;
const rendered = () => {
  rendering ??= renderRegions();
  return rendering;
};

describe('generated documentation', () => {
  it.each(docFiles())('%s is current (run npm run docs when this fails)', async (file) => {
    const committed = readDoc(file);
    const { text } = applyRegions(committed, await rendered(), file);
    expect(committed, `${file} is stale: run npm run docs`).toBe(text);
  });

  it('places every generated region in exactly one page', async () => {
    const regions = await rendered();
    const placed = new Map<string, string[]>();
    for (const file of docFiles()) {
      for (const name of applyRegions(readDoc(file), regions, file).names) {
        placed.set(name, [...(placed.get(name) ?? []), file]);
      }
    }
    for (const name of regions.keys()) {
      expect(placed.get(name) ?? [], `region ${name}: add its markers to one page of docs/`).toHaveLength(1);
    }
  });

  it('describes every configuration key', () => {
    const undescribed = [...configRows().values()]
      .flat()
      .filter((row) => row.description === '')
      .map((row) => row.path);
    expect(undescribed, 'add .describe() to the field in src/config/*.ts').toEqual([]);
  });

  it('covers every key of the configuration JSON Schema', () => {
    const schema = JSON.parse(readFileSync(join(REPO, 'schema/mcpd.config.schema.json'), 'utf8')) as {
      properties: Record<string, unknown>;
    };
    const sections = [...configRows().keys()];
    expect(sections).toEqual(Object.keys(schema.properties).filter((key) => key !== '$schema'));
  });
});

describe('README and docs/', () => {
  const readme = readDoc('README.md');

  it('keeps the README a front page, under 250 lines', () => {
    const lines = readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0);
    expect(lines, 'README.md is the front page; move detail into docs/').toBeLessThan(250);
  });

  it('starts the README with the two commands', () => {
    const blocks = [...readme.matchAll(/^```[^\n]*\n([\s\S]*?)^```$/gm)].map((match) => match[1]?.trim());
    expect(blocks.slice(0, 2)).toEqual(['npm ci && npm start', 'npm test']);
  });

  it('has no relative link to a missing file or heading', () => {
    const broken: string[] = [];
    for (const file of docFiles()) {
      for (const { target, number } of links(readDoc(file))) {
        if (isExternal(target)) continue;
        const { file: to, anchor } = resolveLink(file, target);
        const where = `${file}:${number}: ${target}`;
        if (!existsSync(join(REPO, to))) {
          broken.push(`${where} (no file ${to})`);
          continue;
        }
        if (anchor === undefined || anchor === '') continue;
        if (!to.endsWith('.md') || statSync(join(REPO, to)).isDirectory()) {
          broken.push(`${where} (an anchor into a file that is not Markdown)`);
        } else if (!anchors(readDoc(to)).has(anchor)) {
          broken.push(`${where} (no heading #${anchor} in ${to})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('reaches every page of docs/ from the README', () => {
    const reached = new Set<string>(['README.md']);
    const queue = ['README.md'];
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      for (const { target } of links(readDoc(file))) {
        if (isExternal(target)) continue;
        const { file: to } = resolveLink(file, target);
        if (to.endsWith('.md') && !reached.has(to) && existsSync(join(REPO, to))) {
          reached.add(to);
          queue.push(to);
        }
      }
    }
    const unreached = docFiles().filter((file) => !reached.has(file));
    expect(unreached, 'link these pages from README.md').toEqual([]);
    const direct = new Set(links(readme).map(({ target }) => resolveLink('README.md', target).file));
    expect(
      docFiles().filter((file) => file !== 'README.md' && !direct.has(file)),
      'README.md links every page of docs/ directly',
    ).toEqual([]);
  });

  it('keeps table cells to a phrase', () => {
    const long: string[] = [];
    for (const file of docFiles()) {
      for (const { line, number } of prose(readDoc(file))) {
        if (!line.startsWith('|')) continue;
        for (const cell of line.split(/(?<!\\)\|/).slice(1, -1)) {
          if (cell.trim().length > 250) long.push(`${relative(REPO, join(REPO, file))}:${number}: ${cell.trim()}`);
        }
      }
    }
    expect(long, 'a table cell holds a phrase; put longer text in a list below the table').toEqual([]);
  });
});
