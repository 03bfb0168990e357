import { createTwoFilesPatch } from 'diff';
import * as z from 'zod';
import type { Measured } from '../../access/gate.js';
import { McpdError, notFoundOrDenied } from '../../errors.js';
import { readTarget } from '../../fs/files.js';
import { deleteEntry, createDirectory as makeDirectory, writeFileAtomic } from '../../fs/write.js';
import type { Target } from '../../policy/types.js';
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

function refuseSymlink(target: Target): void {
  if (target.kind === 'symlink') {
    throw new McpdError('NOT_A_FILE', `${target.display} is a symbolic link; write to the file it points to`);
  }
}

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
    const structured = await ctx.gate.access(ctx.caller, { op: 'write', path, root }, async (target) => {
      refuseSymlink(target);
      const outcome = await writeFileAtomic(target, data, { createOnly, expectedEtag });
      return {
        value: { uri: target.uri, size: outcome.info.size, etag: outcome.info.etag, created: outcome.created },
        bytes: data.length,
      };
    });
    return structured;
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
type EditOutcome = z.output<typeof editOutput>;

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
    const structured = await ctx.gate.accessAll(
      ctx.caller,
      [
        { op: 'read', path, root },
        { op: 'write', path, root },
      ],
      async ([readable, writable]): Promise<Measured<EditOutcome>> => {
        if (!readable || !writable) throw notFoundOrDenied(null);
        refuseSymlink(writable);
        if (writable.kind === 'missing') throw notFoundOrDenied(writable.display);
        if (readable.absPath !== writable.absPath) throw notFoundOrDenied(writable.display);
        const current = await readTarget(writable, {
          range: { kind: 'whole' },
          maxBytes: ctx.config.limits.maxWriteBytes,
        });
        if (current.kind !== 'text')
          throw new McpdError('NOT_A_FILE', `${writable.display} is binary; edit_file edits text`);
        if (expectedEtag !== undefined && expectedEtag !== current.info.etag) {
          throw new McpdError(
            'CONFLICT',
            `${writable.display} changed since it was read (ETag is now ${current.info.etag})`,
            {
              currentEtag: current.info.etag,
            },
          );
        }
        const updated = applyEdits(current.text, edits);
        const label = writable.relPath;
        const diff = createTwoFilesPatch(`a/${label}`, `b/${label}`, current.text, updated, undefined, undefined, {
          context: 3,
        });
        if (dryRun) return { value: { uri: writable.uri, diff, dryRun, etag: current.info.etag }, bytes: 0 };
        const outcome = await writeFileAtomic(writable, Buffer.from(updated, 'utf8'), {
          expectedEtag: current.info.etag,
        });
        return { value: { uri: writable.uri, diff, dryRun, etag: outcome.info.etag }, bytes: outcome.info.size };
      },
    );
    return structured;
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
    const structured = await ctx.gate.access(ctx.caller, { op: 'write', path, root }, async (target) => {
      refuseSymlink(target);
      const { created } = await makeDirectory(
        target,
        recursive,
        (relPath) => ctx.gate.policy.judge('write', ctx.gate.policy.targetFor(target.root, relPath, 'missing')).allow,
      );
      return { value: { uri: target.uri, created } };
    });
    return structured;
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
    return ctx.gate.move(
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
    const structured = await ctx.gate.access(ctx.caller, { op: 'write', path, root }, async (target) => {
      if (target.kind === 'missing') throw notFoundOrDenied(target.display);
      const { type } = await deleteEntry(target);
      return { value: { uri: target.uri, type } };
    });
    return structured;
  },
});
