import type { ContentBlock } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { isMcpdError, McpdError, notFoundOrDenied } from '../../errors.js';
import { type ReadRange, type ReadResult, readTarget } from '../../fs/files.js';
import type { Target } from '../../policy/types.js';
import { defineTool, READ_ONLY, type ToolContext } from '../toolkit.js';
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

const readSummary = z.object({
  uri: z.string(),
  size: z.number().describe('Size of the whole file in bytes.'),
  etag: z.string(),
  mimeType: z.string().nullable(),
  encoding: z.enum(['utf-8', 'base64']),
  range: z
    .object({ unit: z.enum(['bytes', 'lines']), start: z.number(), end: z.number() })
    .optional()
    .describe('What was returned when not the whole file: bytes [start, end) or lines [start, end].'),
  complete: z.boolean().describe('True when the whole file was returned.'),
});

type ReadSummary = z.output<typeof readSummary>;

/** Contents go in the content blocks only; the structured part describes them, never repeats them. */
function present(target: Target, result: ReadResult): { summary: ReadSummary; block: ContentBlock } {
  const { info } = result;
  if (result.kind === 'binary') {
    const complete = result.data.length === info.size;
    return {
      summary: {
        uri: target.uri,
        size: info.size,
        etag: info.etag,
        mimeType: result.mimeType,
        encoding: 'base64',
        complete,
      },
      block: {
        type: 'resource',
        resource: { uri: target.uri, mimeType: result.mimeType, blob: result.data.toString('base64') },
      },
    };
  }
  return {
    summary: {
      uri: target.uri,
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

async function readOne(ctx: ToolContext, path: string, root: string | undefined, range: ReadRange, maxBytes: number) {
  return ctx.gate.access(ctx.caller, { op: 'read', path, root }, async (target) => {
    if (target.kind === 'missing') throw notFoundOrDenied(target.uri);
    const result = await readTarget(target, { range, maxBytes, signal: ctx.signal });
    const bytes = result.kind === 'binary' ? result.data.length : Buffer.byteLength(result.text);
    return { value: { ...present(target, result), bytes }, bytes };
  });
}

export const readFile = defineTool({
  name: 'read_file',
  title: 'Read file',
  description:
    'Read a file inside a root. Text comes back as text (optionally a byte range or a line range); binary files ' +
    'come back as a base64 blob with their MIME type. Files above the read limit must be read in ranges; the ' +
    'error says so. The result carries the ETag for write_file/edit_file.',
  input: z.object({ path: pathArg, root: rootArg, ...rangeArgs }),
  output: readSummary,
  annotations: READ_ONLY,
  requires: 'read',
  async run(args, ctx) {
    const { summary, block } = await readOne(ctx, args.path, args.root, rangeOf(args), ctx.config.limits.maxReadBytes);
    return { structured: summary, content: [block] };
  },
});

const fileOutcome = z.object({
  index: z.number().describe('Position in the request (0-based); entries come back in request order.'),
  ok: z.boolean(),
  uri: z.string().optional(),
  size: z.number().optional(),
  etag: z.string().optional(),
  encoding: z.enum(['utf-8', 'base64']).optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

export const readMultipleFiles = defineTool({
  name: 'read_multiple_files',
  title: 'Read several files',
  description:
    'Read several files in one call. Each file succeeds or fails on its own: a missing or refused file is ' +
    'reported in its entry and does not fail the batch. Contents follow in order, one content block per file. ' +
    'The whole batch shares one size budget; files past it are reported as too large.',
  input: z.object({
    paths: z.array(pathArg).min(1).describe('Files to read, in order.'),
    root: rootArg,
  }),
  output: z.object({ files: z.array(fileOutcome) }),
  annotations: READ_ONLY,
  requires: 'read',
  async run({ paths, root }, ctx) {
    const { maxBatchFiles, maxBatchBytes, maxReadBytes } = ctx.config.limits;
    if (paths.length > maxBatchFiles) {
      throw new McpdError(
        'TOO_LARGE',
        `at most ${maxBatchFiles} files per call (got ${paths.length}); split the batch`,
      );
    }
    let budget = maxBatchBytes;
    const files: z.output<typeof fileOutcome>[] = [];
    const content: ContentBlock[] = [];
    for (const [index, path] of paths.entries()) {
      ctx.signal.throwIfAborted();
      try {
        if (budget <= 0)
          throw new McpdError(
            'TOO_LARGE',
            `the batch reached its ${maxBatchBytes}-byte budget; read this file separately`,
          );
        const { summary, block, bytes } = await readOne(
          ctx,
          path,
          root,
          { kind: 'whole' },
          Math.min(maxReadBytes, budget),
        );
        budget -= bytes;
        files.push({
          index,
          ok: true,
          uri: summary.uri,
          size: summary.size,
          etag: summary.etag,
          encoding: summary.encoding,
        });
        content.push({ type: 'text', text: `--- ${summary.uri} ---` }, block);
      } catch (error) {
        if (!isMcpdError(error)) throw error;
        // The request's own path is not echoed: it may be a host path outside every root.
        files.push({ index, ok: false, error: { code: error.code, message: error.message } });
        content.push({ type: 'text', text: `--- file ${index + 1}: ${error.code}: ${error.message} ---` });
      }
    }
    return { structured: { files }, content };
  },
});
