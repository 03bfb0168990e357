import type { ContentBlock } from '@modelcontextprotocol/server';

/**
 * Listings as a person (or a model) reads them: one short line per entry, the way `ls`, `tree` and
 * `grep -n` print them. A model pays for every byte of text in tokens, and a thousand entries of
 * JSON are ten times the bytes of a thousand names. The structured value keeps every field; these
 * lines are made from it alone.
 */

type EntryKind = 'file' | 'directory' | 'other';

const TAG: Readonly<Record<EntryKind, string>> = { file: '[FILE]', directory: '[DIR]', other: '[OTHER]' };

/** A name as a line shows it: a directory ends with "/". */
export const shown = (name: string, type: EntryKind) => (type === 'directory' ? `${name}/` : name);

export function text(lines: readonly string[]): ContentBlock[] {
  return [{ type: 'text', text: lines.join('\n') }];
}

export function listingLines(value: {
  uri: string;
  total: number;
  entries: readonly { name: string; type: EntryKind; symlink?: true; size?: number; modified?: string }[];
  nextCursor?: string;
}): ContentBlock[] {
  const head = `${value.uri}: ${value.entries.length} of ${value.total} entries`;
  const lines = value.entries.map(
    (entry) =>
      `${TAG[entry.type]} ${shown(entry.name, entry.type)}${entry.symlink ? ' (link)' : ''}` +
      (entry.modified === undefined
        ? ''
        : `  ${entry.type === 'file' ? humanSize(entry.size ?? 0) : '-'}  ${entry.modified}`),
  );
  const tail = value.nextCursor === undefined ? [] : [`more: pass cursor "${value.nextCursor}"`];
  return text([head, ...lines, ...tail]);
}

/** Bytes the way `ls -h` prints them. */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export interface TreeLine {
  readonly name: string;
  readonly type: EntryKind;
  readonly children?: readonly TreeLine[];
  readonly truncated?: true;
}

/** A tree indented two spaces a level; a directory cut by the depth limit says so. */
export function treeLines(value: {
  uri: string;
  tree: readonly TreeLine[];
  entries: number;
  truncatedBy: readonly string[];
}): ContentBlock[] {
  const lines = [`${value.uri}/`];
  const visit = (nodes: readonly TreeLine[], depth: number) => {
    for (const node of nodes) {
      lines.push(`${'  '.repeat(depth)}${shown(node.name, node.type)}${node.truncated ? ' …' : ''}`);
      if (node.children) visit(node.children, depth + 1);
    }
  };
  visit(value.tree, 1);
  const cut = value.truncatedBy.length > 0 ? `; cut short by ${value.truncatedBy.join(' and ')}` : '';
  lines.push(`(${value.entries} entries${cut})`);
  return text(lines);
}

/** Paths grouped under the root they are in: a root's name once, then one path a line. */
export function pathsByRoot<T extends { root: string }>(items: readonly T[], line: (item: T) => string): string[] {
  const lines: string[] = [];
  let root: string | undefined;
  for (const item of items) {
    if (item.root !== root) {
      root = item.root;
      lines.push(`# ${root}`);
    }
    lines.push(line(item));
  }
  return lines;
}
