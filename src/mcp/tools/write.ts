import { createTwoFilesPatch } from 'diff';
import * as z from 'zod';
import { McpdError } from '../../errors.js';
import { defineTool, type ToolAnnotations } from '../toolkit.js';
import { pathArg, rootArg } from './common.js';

const MUTATING: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: false,
  openWorldHint: false,
};

const etagArg = z
  .string()
  .max(200)
  .optional()
  .describe('The ETag from read_file or get_file_info; the write fails with CONFLICT if the file changed since.');

export const writeFile = defineTool({
  name: 'write_file',
  title: 'Write file',
  description:
    'Create or replace a file, atomically: readers see the old file or the new one, never a mix, and a failed ' +
    'write leaves the old file intact. createOnly refuses to replace an existing file; expectedEtag refuses to ' +
    'overwrite a file someone else changed since you read it. The parent directory must exist.',
  input: z.object({
    path: pathArg,
    root: rootArg,
    content: z.string().describe('The new contents.'),
    encoding: z.enum(['utf-8', 'base64']).default('utf-8').describe('How `content` is encoded.'),
    createOnly: z.boolean().default(false),
    expectedEtag: etagArg,
  }),
  output: z.object({ uri: z.string(), size: z.number(), etag: z.string(), created: z.boolean() }),
  annotations: MUTATING,
  requires: 'write',
  async run({ path, root, content, encoding, createOnly, expectedEtag }, ctx) {
    const data = encoding === 'base64' ? Buffer.from(content, 'base64') : Buffer.from(content, 'utf8');
    if (data.length > ctx.config.limits.maxWriteBytes) {
      throw new McpdError(
        'TOO_LARGE',
        `content is ${data.length} bytes, above the ${ctx.config.limits.maxWriteBytes}-byte write limit`,
      );
    }
    const outcome = await ctx.files.write(ctx.caller, { path, root }, data, { createOnly, expectedEtag });
    return { uri: outcome.uri, size: outcome.info.size, etag: outcome.info.etag, created: outcome.created };
  },
});

const editSpec = z.object({
  oldText: z.string().min(1).describe('Exact text to replace.'),
  newText: z.string(),
  replaceAll: z
    .boolean()
    .default(false)
    .describe('Replace every occurrence; otherwise oldText must occur exactly once.'),
});

function applyEdits(original: string, edits: readonly z.output<typeof editSpec>[]): string {
  let text = original;
  edits.forEach((edit, index) => {
    const occurrences = text.split(edit.oldText).length - 1;
    if (occurrences === 0) {
      throw new McpdError('EDIT_MISMATCH', `edit ${index + 1}: oldText does not occur in the file`);
    }
    if (occurrences > 1 && !edit.replaceAll) {
      throw new McpdError(
        'EDIT_MISMATCH',
        `edit ${index + 1}: oldText occurs ${occurrences} times; add context to make it unique or set replaceAll`,
      );
    }
    text = edit.replaceAll
      ? text.split(edit.oldText).join(edit.newText)
      : text.replace(edit.oldText, () => edit.newText);
  });
  return text;
}

const editOutput = z.object({
  uri: z.string(),
  diff: z.string(),
  dryRun: z.boolean(),
  etag: z.string().describe('The ETag after the edit (before it, on a dry run).'),
});

export const editFile = defineTool({
  name: 'edit_file',
  title: 'Edit file',
  description:
    'Apply exact text replacements to a text file, in order, and return a unified diff. Each oldText must occur ' +
    'exactly once unless replaceAll is set. dryRun returns the diff without writing. The write is atomic and ' +
    'fails with CONFLICT if the file changed while being edited (or since expectedEtag).',
  input: z.object({
    path: pathArg,
    root: rootArg,
    edits: z.array(editSpec).min(1).max(100),
    dryRun: z.boolean().default(false),
    expectedEtag: etagArg,
  }),
  output: editOutput,
  // The diff as plain text (a model reads it best that way), then the rest of the value.
  render: ({ diff, ...rest }) => [
    { type: 'text', text: diff || '(no changes)' },
    { type: 'text', text: JSON.stringify(rest) },
  ],
  annotations: MUTATING,
  requires: 'write',
  async run({ path, root, edits, dryRun, expectedEtag }, ctx) {
    // Editing reveals contents (the diff), so it needs read as well as write permission.
    const { uri, etag, result } = await ctx.files.edit(
      ctx.caller,
      { path, root },
      { maxBytes: ctx.config.limits.maxWriteBytes, expectedEtag, dryRun },
      (current) => {
        const updated = applyEdits(current.text, edits);
        const diff = createTwoFilesPatch(
          `a/${current.display}`,
          `b/${current.display}`,
          current.text,
          updated,
          undefined,
          undefined,
          {
            context: 3,
          },
        );
        return { text: updated, result: diff };
      },
    );
    return { uri, diff: result, dryRun, etag };
  },
});

export const createDirectory = defineTool({
  name: 'create_directory',
  title: 'Create directory',
  description:
    'Create a directory (and, with recursive, its missing parents, each of which must be writable). ' +
    'Succeeds without change when the directory already exists.',
  input: z.object({ path: pathArg, root: rootArg, recursive: z.boolean().default(true) }),
  output: z.object({ uri: z.string(), created: z.boolean() }),
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  requires: 'write',
  async run({ path, root, recursive }, ctx) {
    return ctx.files.mkdir(ctx.caller, { path, root }, recursive);
  },
});

export const moveFile = defineTool({
  name: 'move_file',
  title: 'Move file',
  description:
    'Move or rename a file or directory. The source must be readable and writable and the destination ' +
    'writable; a directory moves only if every entry in it may be carried along (readable and writable ' +
    'where it is, writable where it lands). An existing destination is never replaced.',
  input: z.object({ source: pathArg, destination: pathArg, root: rootArg }),
  output: z.object({ source: z.string(), destination: z.string() }),
  annotations: MUTATING,
  requires: 'write',
  async run({ source, destination, root }, ctx) {
    return ctx.files.move(
      ctx.caller,
      { source, destination, ...(root === undefined ? {} : { root }) },
      { maxEntries: ctx.config.limits.walkMaxEntries },
    );
  },
});

export const deleteFile = defineTool({
  name: 'delete_file',
  title: 'Delete file',
  description:
    'Delete a file, a symbolic link (never what it points to) or an empty directory. Directories with contents ' +
    'are refused; delete their contents first.',
  input: z.object({ path: pathArg, root: rootArg }),
  output: z.object({ uri: z.string(), type: z.enum(['file', 'directory']) }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  requires: 'write',
  async run({ path, root }, ctx) {
    return ctx.files.delete(ctx.caller, { path, root });
  },
});
