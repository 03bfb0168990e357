import type { ContentBlock } from '@modelcontextprotocol/server';
import * as z from 'zod';
import type { ReadRange, ReadResult } from '../../access/files.js';
import { isMcpdError, McpdError } from '../../errors.js';
import { defineContentTool, READ_ONLY, type ToolContext } from '../toolkit.js';
import { pathArg, rootArg } from './common.js';

const rangeArgs = {
  offset: z.number().int().min(0).optional().describe('Byte offset to start reading at.'),
  length: z.number().int().positive().optional().describe('Number of bytes to read from offset.'),
  startLine: z.number().int().positive().optional().describe('First line to return (1-based).'),
  endLine: z.number().int().positive().optional().describe('Last line to return (inclusive).'),
};

function rangeOf(args: { offset?: number; length?: number; startLine?: number; endLine?: number }): ReadRange {
  const bytes = args.offset !== undefined || args.length !== undefined;
  const lines = args.startLine !== undefined || args.endLine !== undefined;
  if (bytes && lines)
    throw new McpdError('INVALID_ARGUMENT', 'give either offset/length or startLine/endLine, not both');
  if (lines) {
    const start = args.startLine ?? 1;
    if (args.endLine !== undefined && args.endLine < start) {
      throw new McpdError('INVALID_ARGUMENT', 'endLine must not be before startLine');
    }
    return { kind: 'lines', start, end: args.endLine };
  }
  if (bytes) return { kind: 'bytes', offset: args.offset ?? 0, length: args.length };
  return { kind: 'whole' };
}

/** What a read returned, beside the contents: one small text block of compact JSON. */
interface ReadMetadata {
  readonly uri: string;
  /** Size of the whole file in bytes. */
  readonly size: number;
  readonly etag: string;
  readonly mimeType: string | null;
  readonly encoding: 'utf-8' | 'base64';
  /** What was returned when not the whole file: bytes [start, end) or lines [start, end]. */
  readonly range?: { unit: 'bytes' | 'lines'; start: number; end: number };
  readonly complete: boolean;
}

/** The contents block (text, or an embedded blob for binary) and the metadata that describes it. */
function present(result: ReadResult): { metadata: ReadMetadata; block: ContentBlock } {
  const { info } = result;
  if (result.kind === 'binary') {
    return {
      metadata: {
        uri: info.uri,
        size: info.size,
        etag: info.etag,
        mimeType: result.mimeType,
        encoding: 'base64',
        complete: result.data.length === info.size,
      },
      block: {
        type: 'resource',
        resource: { uri: info.uri, mimeType: result.mimeType, blob: result.data.toString('base64') },
      },
    };
  }
  return {
    metadata: {
      uri: info.uri,
      size: info.size,
      etag: info.etag,
      mimeType: info.mimeType,
      encoding: 'utf-8',
      ...(result.complete ? {} : { range: result.returned }),
      complete: result.complete,
    },
    block: { type: 'text', text: result.text },
  };
}

const metadataBlock = (value: object): ContentBlock => ({ type: 'text', text: JSON.stringify(value) });

async function readOne(
  ctx: ToolContext,
  path: string,
  root: string | undefined,
  range: ReadRange,
  maxBytes: number,
  admit?: (bytes: number) => Promise<void>,
) {
  const result = await ctx.files.read(ctx.caller, { path, root }, { range, maxBytes, ...(admit ? { admit } : {}) });
  const bytes = result.kind === 'binary' ? result.data.length : Buffer.byteLength(result.text);
  return { ...present(result), bytes };
}

export const readFile = defineContentTool({
  name: 'read_file',
  title: 'Read file',
  description:
    'Read a file inside a root. Text comes back as text (optionally a byte range or a line range); binary files ' +
    'come back as a base64 blob with their MIME type. Files above the read limit must be read in ranges; the ' +
    'error says so. A first text block holds the metadata as JSON (uri, size, the ETag for ' +
    'write_file/edit_file, mimeType, range, complete); the contents follow.',
  input: z.object({ path: pathArg, root: rootArg, ...rangeArgs }),
  annotations: READ_ONLY,
  requires: 'read',
  async run(args, ctx) {
    const { metadata, block } = await readOne(ctx, args.path, args.root, rangeOf(args), ctx.config.limits.maxReadBytes);
    return [metadataBlock(metadata), block];
  },
});

export const readMultipleFiles = defineContentTool({
  name: 'read_multiple_files',
  title: 'Read several files',
  description:
    'Read several files in one call. Each file succeeds or fails on its own: a missing or refused file is ' +
    'reported in its entry and does not fail the batch. For each file, in request order, a metadata text ' +
    'block (JSON: index, ok, uri, size, etag, mimeType, or the error) is followed by its contents. The whole ' +
    'batch shares one size budget; files past it are reported as too large.',
  input: z.object({
    paths: z.array(pathArg).min(1).describe('Files to read, in order.'),
    root: rootArg,
  }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ paths, root }, ctx) {
    const { maxBatchFiles, maxBatchBytes, maxReadBytes } = ctx.config.limits;
    if (paths.length > maxBatchFiles) {
      const reason = `at most ${maxBatchFiles} files per call (got ${paths.length}); split the batch`;
      // Refused before any path was looked at, and still an access attempt: audited as one.
      ctx.files.refuse(ctx.caller, { op: 'read', rule: 'limit:batch-files', reason, requested: 'read_multiple_files' });
      throw new McpdError('TOO_LARGE', reason);
    }
    // Files are read BATCH_PARALLELISM at a time, and admitted to the shared budget in request
    // order once their size is known: the answer is the one reading them one by one would give.
    const budget = new OrderedBudget(maxBatchBytes);
    const content: ContentBlock[][] = [];
    const readAt = async (index: number, path: string) => {
      try {
        ctx.signal.throwIfAborted();
        const { metadata, block } = await readOne(ctx, path, root, { kind: 'whole' }, maxReadBytes, (bytes) =>
          budget.admit(index, bytes),
        );
        content[index] = [metadataBlock({ index, ok: true, ...metadata }), block];
      } catch (error) {
        // A cancelled call fails as a whole; a file that fails on its own is reported in its entry.
        if (!isMcpdError(error) || ctx.signal.aborted) throw error;
        // The request's own path is not echoed: it may be a host path outside every root.
        content[index] = [metadataBlock({ index, ok: false, error: { code: error.code, message: error.message } })];
      } finally {
        budget.pass(index);
      }
    };
    let next = 0;
    const worker = async () => {
      while (next < paths.length) {
        const index = next++;
        await readAt(index, paths[index] as string);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_PARALLELISM, paths.length) }, worker));
    ctx.signal.throwIfAborted();
    return content.flat();
  },
});

/**
 * Files of a batch in flight at once: as many as the file workers take in one message, so that a
 * batch of small files costs a few messages rather than a few per file. Memory stays bounded: a
 * file is read whole in a worker only up to 256 KiB, and larger ones only once the batch's byte
 * budget has admitted them.
 */
const BATCH_PARALLELISM = 64;

/**
 * A batch's byte budget, handed out in request order: file i is admitted only after every file
 * before it was admitted or failed, so which files fit does not depend on which read finished
 * first. Files start in order, so the lowest one in flight can always be admitted.
 */
class OrderedBudget {
  private remaining: number;
  private turn = 0;
  private readonly done = new Set<number>();
  private readonly waiting = new Map<number, () => void>();

  constructor(private readonly total: number) {
    this.remaining = total;
  }

  async admit(index: number, bytes: number): Promise<void> {
    if (this.turn < index) await new Promise<void>((resolve) => this.waiting.set(index, resolve));
    try {
      if (this.remaining <= 0) {
        throw new McpdError('TOO_LARGE', `the batch reached its ${this.total}-byte budget; read this file separately`);
      }
      if (bytes > this.remaining) {
        throw new McpdError(
          'TOO_LARGE',
          `the file is ${bytes} bytes and ${this.remaining} of the batch's ${this.total}-byte budget are left; ` +
            'read this file separately',
          { size: bytes, limit: this.remaining },
        );
      }
      this.remaining -= bytes;
    } finally {
      // Admitted or refused, the next file's turn comes now, not when this one's read ends.
      this.pass(index);
    }
  }

  /** File `index` is done with the budget (admitted, refused, or failed before asking); again is nothing. */
  pass(index: number): void {
    if (index < this.turn || this.done.has(index)) return;
    this.done.add(index);
    while (this.done.has(this.turn)) {
      this.done.delete(this.turn);
      this.turn += 1;
    }
    const wake = this.waiting.get(this.turn);
    this.waiting.delete(this.turn);
    wake?.();
  }
}
