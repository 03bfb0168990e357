import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as z from 'zod';
import { pause } from '../../slices.js';
import { defineTool, READ_ONLY } from '../toolkit.js';
import { pathArg, rootArg } from './common.js';

const HEADER_EXTENSIONS = /\.(csv|tsv)$/i;

/**
 * Counts what a data file holds, one chunk at a time: lines, records (non-empty lines, less the
 * header row of a CSV/TSV), bytes, and a SHA-256 of the whole content.
 */
/** Bytes counted and hashed between two looks at the loop's slice. */
const PIECE_BYTES = 1024 * 1024;

/** Whether bytes [start, end) hold anything but spaces, tabs and carriage returns. */
function hasContent(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i];
    if (byte !== 13 && byte !== 32 && byte !== 9) return true;
  }
  return false;
}

class DatasetTally {
  bytes = 0;
  lines = 0;
  nonEmptyLines = 0;
  private lineHasContent = false;
  private readonly hash = createHash('sha256');

  /**
   * Counts and hashes a chunk a piece at a time, each piece in the loop's shared slice: a 16 MiB
   * chunk is tens of milliseconds of work, which must not hold the loop in one go.
   */
  async add(chunk: Buffer): Promise<void> {
    for (let start = 0; start < chunk.length; start += PIECE_BYTES) {
      const turn = pause();
      if (turn) await turn;
      this.addPiece(chunk.subarray(start, start + PIECE_BYTES));
    }
  }

  private addPiece(piece: Buffer): void {
    this.hash.update(piece);
    this.bytes += piece.length;
    let start = 0;
    while (start < piece.length) {
      // Newlines are found natively; only a line's leading bytes are looked at to tell it is not blank.
      const newline = piece.indexOf(10, start);
      const end = newline === -1 ? piece.length : newline;
      if (!this.lineHasContent) this.lineHasContent = hasContent(piece, start, end);
      if (newline === -1) break;
      this.lines += 1;
      if (this.lineHasContent) this.nonEmptyLines += 1;
      this.lineHasContent = false;
      start = newline + 1;
    }
  }

  finish(hasHeader: boolean) {
    // A last line without a newline is still a line.
    if (this.lineHasContent) {
      this.lines += 1;
      this.nonEmptyLines += 1;
    }
    return {
      lines: this.lines,
      records: Math.max(0, this.nonEmptyLines - (hasHeader && this.nonEmptyLines > 0 ? 1 : 0)),
      checksum: `sha256:${this.hash.digest('hex')}`,
    };
  }
}

export const processLargeDataset = defineTool({
  name: 'process_large_dataset',
  title: 'Process large dataset',
  description:
    'Stream a large data file in chunks with async I/O and summarise it: bytes, lines, records (non-empty lines; ' +
    'a CSV/TSV header row is not a record), a SHA-256 checksum and the duration. Sends one progress notification ' +
    'per chunk ("Processed: ...") when the request carries a progress token, and stops promptly when cancelled.',
  input: z.object({
    path: pathArg,
    root: rootArg,
    chunkSize: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .optional()
      .describe('Bytes per chunk (default 64 KiB).'),
  }),
  output: z.object({
    uri: z.string(),
    bytes: z.number(),
    lines: z.number(),
    records: z.number(),
    chunks: z.number(),
    checksum: z.string(),
    durationMs: z.number(),
  }),
  render: (s) => [
    {
      type: 'text',
      text:
        `Processed ${s.uri}: ${s.bytes} bytes in ${s.chunks} chunks, ${s.lines} lines, ` +
        `${s.records} records, ${s.checksum}, ${s.durationMs} ms`,
    },
  ],
  annotations: READ_ONLY,
  requires: 'read',
  async run({ path, root, chunkSize }, ctx) {
    const started = performance.now();
    const tally = new DatasetTally();
    let chunks = 0;
    return ctx.files.stream(
      ctx.caller,
      { path, root },
      chunkSize ?? ctx.config.limits.datasetChunkBytes,
      async (chunk, done, size) => {
        await tally.add(chunk);
        chunks += 1;
        const percent = size > 0 ? Math.min(100, Math.floor((done / size) * 100)) : 100;
        await ctx.progress(
          done,
          size,
          `Processed: ${done} of ${size} bytes (${percent}%), ${tally.lines} lines, chunk ${chunks}`,
        );
        // Yield to the event loop between chunks so other requests keep moving.
        await new Promise<void>((resolve) => setImmediate(resolve));
      },
      (target, bytes) => ({
        uri: target.uri,
        bytes,
        ...tally.finish(HEADER_EXTENSIONS.test(target.relPath)),
        chunks,
        durationMs: Math.round(performance.now() - started),
      }),
    );
  },
});
