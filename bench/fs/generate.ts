/**
 * A deterministic file tree for the filesystem benchmark: the same seed and size give the same
 * names, sizes and contents on every machine, so runs compare. Shape (for `files` = 100,000):
 *
 * - `wide/`: exactly 1,000 files, the listing row's directory (no excluded names, so every server
 *   lists all 1,000).
 * - `subtree/`: `files / 10` files (10,000) in their own random directories, the small tree row.
 * - `large/`: `big.txt` of exactly 50 MiB (the big read) and three of 1, 2 and 5 MiB.
 * - `warmup/`: 500 files that the benchmark calls tools on to warm a fresh process up without
 *   touching the directories it then measures.
 * - the rest at the top, in random directories: about ten entries a directory, depth at most 6.
 *
 * Small files are 100 B to 20 KiB, most of them small (mean about 2 KiB). Names mix spaces and
 * non-ASCII (accents, CJK, an emoji); about one directory in fifty holds a `.env` and one file in
 * 500 is a `*.key` (both hidden by mcpd's built-in excludes, listed by the official server). One
 * file in 2,000 ends in `.lock`, the few-hits search. Contents are ASCII text, so every server
 * answers with text, never a binary blob.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prng } from '../../test/helpers/random.js';

export interface GeneratedFile {
  /** Root-relative, "/"-separated. */
  readonly relPath: string;
  readonly size: number;
}

export interface GeneratedTree {
  /** Absolute path of the tree's root directory. */
  readonly root: string;
  /** Every directory below the root, root-relative, parents before children. */
  readonly dirs: readonly string[];
  readonly files: readonly GeneratedFile[];
  readonly bytes: number;
  readonly wideDir: string;
  readonly subtreeDir: string;
  readonly warmupDir: string;
  readonly bigFile: string;
  readonly bigFileBytes: number;
}

export interface TreeOptions {
  /** Regular files in the whole tree, all parts counted. */
  readonly files: number;
  readonly seed?: number;
  /** Files written at once: enough to keep the disk busy, few enough not to exhaust descriptors. */
  readonly concurrency?: number;
}

export const WIDE_ENTRIES = 1000;
const WARMUP_FILES = 500;
const MAX_DEPTH = 6;
/** Files per directory on average: with the subdirectories, about ten entries each. */
const FILES_PER_DIR = 9;
const BIG_FILE_BYTES = 50 * 1024 * 1024;
const OTHER_LARGE_BYTES = [1, 2, 5].map((mib) => mib * 1024 * 1024);
const MIN_SMALL = 100;
const MAX_SMALL = 20 * 1024;

/** Names mostly ASCII, some with accents, CJK or an emoji: paths a server must carry through intact. */
const NAME_WORDS = [
  'alpha',
  'beta',
  'notes',
  'report',
  'config',
  'module',
  'service',
  'handler',
  'util',
  'index',
  'draft',
  'schema',
  'client',
  'server',
  'café',
  'naïve',
  'résumé',
  'données',
  'über',
  '日本語',
  'данные',
  'fête 🎉',
];
const TEXT_WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'file', 'tree', 'server', 'bench', 'data', 'line'];
const EXTENSIONS: readonly (readonly [string, number])[] = [
  ['md', 0.2],
  ['txt', 0.2],
  ['ts', 0.2],
  ['json', 0.15],
  ['yaml', 0.1],
  ['csv', 0.05],
  ['log', 0.1],
];

/** True for the names mcpd's built-in excludes hide (the generator makes only these two kinds). */
export const isExcludedByMcpd = (relPath: string): boolean => {
  const name = relPath.slice(relPath.lastIndexOf('/') + 1);
  return name === '.env' || name.endsWith('.key');
};

/** Plans the tree (names, sizes) without touching the disk, then writes it. */
export async function generateTree(root: string, options: TreeOptions): Promise<GeneratedTree> {
  const rand = prng(options.seed ?? 20261130);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  const dirs: string[] = [];
  const files: GeneratedFile[] = [];
  let fileCount = 0;

  const smallSize = () => {
    // 100 B * 204.8^(r^2): from 100 B to 20 KiB, skewed small (mean about 2.2 KiB).
    const size = Math.round(MIN_SMALL * (MAX_SMALL / MIN_SMALL) ** (rand() ** 2));
    return Math.min(MAX_SMALL, Math.max(MIN_SMALL, size));
  };
  const fileName = (plain: boolean) => {
    fileCount += 1;
    if (!plain && fileCount % 500 === 250) return `${pick(['server', 'deploy', 'signing'])} ${fileCount}.key`;
    if (!plain && fileCount % 2000 === 1000) return `package ${fileCount}.lock`;
    let roll = rand();
    let ext = 'txt';
    for (const [candidate, share] of EXTENSIONS) {
      if (roll < share) {
        ext = candidate;
        break;
      }
      roll -= share;
    }
    // One name in ten has a space; the words themselves bring the non-ASCII ones.
    const separator = rand() < 0.1 ? ' ' : '-';
    return `${pick(NAME_WORDS)}${separator}${fileCount}.${ext}`;
  };
  const addDir = (relPath: string) => {
    dirs.push(relPath);
    return relPath;
  };
  const addFile = (dir: string, name: string, size: number) => {
    files.push({ relPath: dir === '' ? name : `${dir}/${name}`, size });
  };

  /**
   * Random directories under `base` (a random recursive tree: each new directory hangs under one
   * picked uniformly among those not yet at the depth limit), then `count` files spread uniformly
   * over them, and a `.env` in about one directory in fifty.
   */
  const randomTree = (base: string, count: number, maxDepth: number) => {
    const nodes: { path: string; depth: number }[] = [{ path: base, depth: 0 }];
    const open: number[] = [0];
    const dirCount = Math.max(1, Math.round(count / FILES_PER_DIR));
    for (let i = 1; i < dirCount; i++) {
      const parent = nodes[open[Math.floor(rand() * open.length)] as number] as { path: string; depth: number };
      const name = `${pick(NAME_WORDS)}${rand() < 0.1 ? ' ' : '-'}d${i}`;
      const path = addDir(parent.path === '' ? name : `${parent.path}/${name}`);
      nodes.push({ path, depth: parent.depth + 1 });
      if (parent.depth + 1 < maxDepth) open.push(nodes.length - 1);
    }
    let placed = 0;
    for (const node of nodes) {
      if (rand() < 0.02 && placed < count) {
        addFile(node.path, '.env', 100 + Math.floor(rand() * 200));
        placed += 1;
      }
    }
    for (; placed < count; placed++) addFile((pick(nodes) as { path: string }).path, fileName(false), smallSize());
  };

  const wideDir = addDir('wide');
  for (let i = 0; i < WIDE_ENTRIES; i++) addFile(wideDir, fileName(true), smallSize());

  const largeDir = addDir('large');
  const bigFile = `${largeDir}/big.txt`;
  addFile(largeDir, 'big.txt', BIG_FILE_BYTES);
  for (const [i, size] of OTHER_LARGE_BYTES.entries()) addFile(largeDir, `large ${i + 1}.log`, size);

  const warmupDir = addDir('warmup');
  randomTree(warmupDir, WARMUP_FILES, 3);

  const subtreeDir = addDir('subtree');
  const subtreeFiles = Math.round(options.files / 10);
  randomTree(subtreeDir, subtreeFiles, MAX_DEPTH - 1);

  const rest = options.files - files.length - subtreeFiles;
  if (rest < 0) throw new Error(`BENCH_FS_FILES=${options.files} is too small for the fixed parts of the tree`);
  randomTree('', rest, MAX_DEPTH);

  await write(root, dirs, files, corpus(rand), options.concurrency ?? 64);
  return {
    root,
    dirs,
    files,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
    wideDir,
    subtreeDir,
    warmupDir,
    bigFile,
    bigFileBytes: BIG_FILE_BYTES,
  };
}

/** One MiB of ASCII lines that every file's contents are cut from. */
function corpus(rand: () => number): Buffer {
  const lines: string[] = [];
  let length = 0;
  while (length < 1024 * 1024) {
    const words = Array.from({ length: 4 + Math.floor(rand() * 10) }, () => TEXT_WORDS[Math.floor(rand() * 11)]);
    const line = words.join(' ');
    lines.push(line);
    length += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`, 'ascii').subarray(0, 1024 * 1024);
}

async function write(
  root: string,
  dirs: readonly string[],
  files: readonly GeneratedFile[],
  text: Buffer,
  concurrency: number,
): Promise<void> {
  await mkdir(root, { recursive: true });
  // Parents come before children in `dirs`, so plain mkdir in order works.
  for (const dir of dirs) await mkdir(join(root, dir));
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next] as GeneratedFile;
      // A file's contents start at a point derived from its index, so they differ but stay reproducible.
      const start = (next * 7919) % (text.length - MAX_SMALL);
      next += 1;
      const contents = file.size <= MAX_SMALL ? text.subarray(start, start + file.size) : Buffer.alloc(file.size, text);
      await writeFile(join(root, file.relPath), contents);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
