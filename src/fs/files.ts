import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type MimeTypes from 'mime-types';
import { McpdError, notFoundOrDenied } from '../errors.js';
import type { EntryKind, Target } from '../policy/types.js';
import { checkRegularFile, isRefusedHardLink, openFailure, openRegularFile, openVerified } from './open.js';
import type { FileStats, Opened, SyscallWorkers } from './syscalls.js';

/** Bytes sniffed to tell text from binary. */
const SNIFF_BYTES = 8192;
const READ_CHUNK = 64 * 1024;

export interface FileInfo {
  readonly uri: string;
  readonly root: string;
  readonly path: string;
  readonly type: 'file' | 'directory' | 'other';
  readonly size: number;
  readonly modified: string;
  readonly created: string;
  readonly permissions: string;
  readonly etag: string;
  readonly mimeType: string | null;
}

/**
 * A version identifier that changes whenever the file does: atomic writes create a new inode, and
 * any in-place change moves mtime or size. Cheap (no read), so it is computed on every stat.
 */
export function etagOf(stats: FileStats): string {
  const digest = createHash('sha256')
    .update(`${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`)
    .digest('base64url');
  return `"${digest.slice(0, 22)}"`;
}

/**
 * mime-types, loaded on the first lookup: building its table of some 2,000 types is milliseconds
 * that a start (or a process that never reads a file) need not pay. Required from node_modules,
 * not bundled.
 */
let mimeTypes: typeof MimeTypes | undefined;

export function mimeTypeOf(name: string): string | null {
  mimeTypes ??= createRequire(import.meta.url)('mime-types') as typeof MimeTypes;
  return mimeTypes.lookup(name) || null;
}

function typeOf(stats: FileStats): FileInfo['type'] {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  return 'other';
}

const dateOf = (ns: bigint) => new Date(Number(ns / 1_000_000n));

export function describe(target: Target, stats: FileStats): FileInfo {
  return {
    uri: target.uri,
    root: target.root.name,
    path: target.relPath,
    type: typeOf(stats),
    size: Number(stats.size),
    modified: dateOf(stats.mtimeNs).toISOString(),
    created: dateOf(stats.birthtimeNs > 0n ? stats.birthtimeNs : stats.ctimeNs).toISOString(),
    permissions: (Number(stats.mode) & 0o777).toString(8).padStart(3, '0'),
    etag: etagOf(stats),
    mimeType: stats.isFile() ? mimeTypeOf(target.relPath) : null,
  };
}

/** The stats of what a worker opened and proved, or the error a client may see. */
function provenStats(opened: Opened, target: Target): FileStats {
  if ('error' in opened) throw openFailure(opened.error, target);
  return opened.stats;
}

export async function statTarget(target: Target, workers?: SyscallWorkers): Promise<FileInfo> {
  if (workers) {
    const stats = provenStats(await workers.open(target.absPath, -1), target);
    if (isRefusedHardLink(stats, target)) throw notFoundOrDenied(target.display);
    return describe(target, stats);
  }
  const handle = await openVerified(target);
  try {
    const stats = await handle.stat({ bigint: true });
    if (isRefusedHardLink(stats, target)) throw notFoundOrDenied(target.display);
    return describe(target, stats);
  } finally {
    await handle.close();
  }
}

export function looksBinary(sample: Uint8Array): boolean {
  if (sample.includes(0)) return true;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample, { stream: true });
    return false;
  } catch {
    return true;
  }
}

export type ReadRange =
  | { readonly kind: 'whole' }
  | { readonly kind: 'bytes'; readonly offset: number; readonly length: number | undefined }
  | { readonly kind: 'lines'; readonly start: number; readonly end: number | undefined };

export type ReadResult =
  | {
      readonly kind: 'text';
      readonly text: string;
      readonly info: FileInfo;
      /** What was returned: bytes [start, end) or lines [start, end] (1-based, inclusive). */
      readonly returned: { unit: 'bytes' | 'lines'; start: number; end: number };
      readonly complete: boolean;
    }
  | { readonly kind: 'binary'; readonly data: Buffer; readonly info: FileInfo; readonly mimeType: string };

export interface ReadOptions {
  readonly range: ReadRange;
  readonly maxBytes: number;
  readonly signal?: AbortSignal;
  /**
   * Asked, once the bytes to return are known and before they are read, whether they may be
   * (a batch's shared budget); throws to refuse.
   */
  readonly admit?: (bytes: number) => Promise<void>;
}

function tooLarge(what: string, size: number, max: number): McpdError {
  return new McpdError(
    'TOO_LARGE',
    `${what} is ${size} bytes, above the ${max}-byte read limit; read it in parts with offset/length (bytes) or startLine/endLine`,
    { size, limit: max },
  );
}

/** A file that shrank under a read: what was read is not the file, so nothing is returned. */
function changedWhileReading(target: Target): McpdError {
  return new McpdError('CONFLICT', `${target.display} changed while it was being read; read it again`);
}

/**
 * Whole files up to this size are read by a file worker in the message that opens them; larger
 * ones, and ranges, through a descriptor here, where the size cap is checked before any read.
 */
const INLINE_READ_BYTES = 256 * 1024;

/** Reads a file (or a range of it) through a verified descriptor, under a size cap. */
export async function readTarget(target: Target, options: ReadOptions, workers?: SyscallWorkers): Promise<ReadResult> {
  if (options.range.kind === 'whole' && workers) {
    const opened = await workers.open(target.absPath, Math.min(options.maxBytes, INLINE_READ_BYTES));
    const stats = provenStats(opened, target);
    checkRegularFile(stats, target);
    if ('data' in opened && opened.data) {
      const info = describe(target, stats);
      await options.admit?.(info.size);
      return whole(opened.data, target, info);
    }
    // Above the cap: refused from what the worker saw, without opening the file a second time.
    if (Number(stats.size) > options.maxBytes) throw tooLarge('the file', Number(stats.size), options.maxBytes);
  }
  const { handle, stats } = await openRegularFile(target);
  try {
    const info = describe(target, stats);
    const size = info.size;
    if (options.range.kind === 'whole') return await readWhole(handle, target, info, options);
    const sample = await readAt(handle, 0, Math.min(SNIFF_BYTES, size));
    const mime = info.mimeType ?? 'application/octet-stream';
    const binary = looksBinary(sample);
    const { range, maxBytes } = options;

    if (binary) {
      if (range.kind === 'lines') throw new McpdError('INVALID_ARGUMENT', 'line ranges apply to text files only');
      const [start, length] = range.kind === 'bytes' ? [range.offset, range.length ?? size - range.offset] : [0, size];
      const span = Math.max(0, Math.min(length, size - start));
      if (span > maxBytes) throw tooLarge(range.kind === 'bytes' ? 'the requested range' : 'the file', span, maxBytes);
      await options.admit?.(span);
      const data = await readAt(handle, start, span);
      if (data.length < span) throw changedWhileReading(target);
      return { kind: 'binary', data, info, mimeType: mime };
    }

    if (range.kind === 'lines') return await readLines(handle, info, range.start, range.end, maxBytes, options.signal);

    const start = range.kind === 'bytes' ? Math.min(range.offset, size) : 0;
    const wanted = range.kind === 'bytes' ? (range.length ?? size - start) : size;
    const span = Math.max(0, Math.min(wanted, size - start));
    if (span > maxBytes) throw tooLarge(range.kind === 'bytes' ? 'the requested range' : 'the file', span, maxBytes);
    await options.admit?.(span);
    const data = await readAt(handle, start, span);
    if (data.length < span) throw changedWhileReading(target);
    return {
      kind: 'text',
      text: data.toString('utf8'),
      info,
      returned: { unit: 'bytes', start, end: start + data.length },
      complete: start === 0 && data.length === size,
    };
  } finally {
    await handle.close();
  }
}

/**
 * A whole file in one read (the sniff for binary content looks at what was read), not a sniff
 * and then the file: a batch of small files is mostly system calls, one fewer each is an eighth.
 */
async function readWhole(
  handle: FileHandle,
  target: Target,
  info: FileInfo,
  options: ReadOptions,
): Promise<ReadResult> {
  const size = info.size;
  if (size > options.maxBytes) throw tooLarge('the file', size, options.maxBytes);
  await options.admit?.(size);
  return whole(await readAt(handle, 0, size), target, info);
}

/** A whole file's bytes as text or binary; fewer bytes than its size means it changed under the read. */
function whole(data: Buffer, target: Target, info: FileInfo): ReadResult {
  if (data.length < info.size) throw changedWhileReading(target);
  if (looksBinary(data.subarray(0, SNIFF_BYTES))) {
    return { kind: 'binary', data, info, mimeType: info.mimeType ?? 'application/octet-stream' };
  }
  return {
    kind: 'text',
    text: data.toString('utf8'),
    info,
    returned: { unit: 'bytes', start: 0, end: data.length },
    complete: true,
  };
}

/** Reads `length` bytes at `position`, or fewer when the file ends first. */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

/** Streams the file, keeping only lines [start, end]; stops reading once past `end`. */
async function readLines(
  handle: FileHandle,
  info: FileInfo,
  start: number,
  end: number | undefined,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<ReadResult> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let line = 1;
  let lineStart = 0;
  let position = 0;
  let pending: Buffer[] = [];
  let lastLine = start - 1;
  const chunk = Buffer.alloc(READ_CHUNK);
  const keep = (piece: Buffer) => {
    keptBytes += piece.length;
    if (keptBytes > maxBytes) throw tooLarge('the requested lines', keptBytes, maxBytes);
    kept.push(Buffer.from(piece));
  };
  let reachedEnd = false;
  outer: for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK, position);
    if (bytesRead === 0) {
      reachedEnd = true;
      break;
    }
    const data = chunk.subarray(0, bytesRead);
    lineStart = 0;
    for (;;) {
      const newline = data.indexOf(10, lineStart);
      const inRange = line >= start && (end === undefined || line <= end);
      if (newline === -1) {
        if (inRange && lineStart < data.length) pending.push(Buffer.from(data.subarray(lineStart)));
        break;
      }
      if (inRange) {
        for (const piece of pending) keep(piece);
        keep(data.subarray(lineStart, newline + 1));
        lastLine = line;
      }
      pending = [];
      line += 1;
      lineStart = newline + 1;
      if (end !== undefined && line > end) break outer;
    }
    position += bytesRead;
  }
  if (pending.length > 0) {
    for (const piece of pending) keep(piece);
    lastLine = line;
  }
  // Whole file: started at line 1 and read to the end of the file, not stopped by `end`.
  const complete = start <= 1 && reachedEnd;
  return {
    kind: 'text',
    text: Buffer.concat(kept).toString('utf8'),
    info,
    returned: { unit: 'lines', start, end: Math.max(lastLine, start - 1) },
    complete,
  };
}

/**
 * Reads a file chunk by chunk with async I/O, for streaming tools. The consumer sees every chunk
 * in order and may stop early by aborting the signal.
 */
export async function* readChunks(
  target: Target,
  chunkBytes: number,
  signal?: AbortSignal,
): AsyncGenerator<{ chunk: Buffer; offset: number; size: number }> {
  const { handle, stats } = await openRegularFile(target);
  const size = Number(stats.size);
  try {
    let offset = 0;
    for (;;) {
      signal?.throwIfAborted();
      // A fresh buffer per chunk: a consumer may keep a chunk after asking for the next one.
      const buffer = Buffer.allocUnsafe(chunkBytes);
      const { bytesRead } = await handle.read(buffer, 0, chunkBytes, offset);
      if (bytesRead === 0) {
        // Shorter than it was when opened: the chunks so far were of a file that is no longer there.
        if (offset < size) throw changedWhileReading(target);
        return;
      }
      yield { chunk: buffer.subarray(0, bytesRead), offset, size };
      offset += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

export function kindOfStats(stats: { isFile(): boolean; isDirectory(): boolean }): EntryKind {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  return 'other';
}
