import * as z from 'zod';
import { McpdError } from '../../errors.js';

export const PATH_HELP =
  'A file:// URI from list_roots or a listing, an absolute path inside a root, or a path relative to `root`.';

export const pathArg = z.string().describe(PATH_HELP);
export const rootArg = z
  .string()
  .optional()
  .describe('Root name or URI that a relative path is resolved against; the first root when omitted.');

export const entryType = z.enum(['file', 'directory', 'other']);

/** Opaque pagination cursors: base64url JSON with a kind, so one tool's cursor is refused by another. */
export function encodeCursor(kind: string, value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ k: kind, ...value })).toString('base64url');
}

export function decodeCursor<T extends Record<string, unknown>>(kind: string, cursor: string, shape: z.ZodType<T>): T {
  try {
    const raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown };
    if (raw.k !== kind) throw new Error('wrong kind');
    return shape.parse(raw);
  } catch {
    throw new McpdError('INVALID_ARGUMENT', 'invalid cursor: pass back the nextCursor of the previous page unchanged');
  }
}

export const cursorArg = z.string().max(8192).optional().describe('The nextCursor of the previous page.');
