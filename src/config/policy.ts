import * as z from 'zod';
import { globProblem as syntaxProblem } from '../globs.js';
import { BUILTIN_EXCLUDES, DEFAULT_SCOPES } from './defaults.js';
import { scopeToken } from './fields.js';
import { grantAppliesToSomeone } from './rules.js';

/** What may be reached and by whom: the globs, `roots`, `accessPolicy` and `grants`. */

function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'a glob must not be empty';
  if (pattern.includes('\0')) return 'a glob must not contain a NUL byte';
  if (pattern.startsWith('/')) return 'globs are relative to the root; remove the leading "/"';
  if (pattern.split('/').includes('..')) return 'globs must not contain ".." segments';
  return syntaxProblem(pattern);
}

const glob = z.string().superRefine((pattern, ctx) => {
  const problem = globProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const globList = z.array(glob);

/**
 * A hard link is the same file under a second name, so a link named notes.md to .env would read the
 * secret under a readable name. Refused by default; a root on a store that links on purpose (a
 * package manager's) can allow it.
 */
const hardLinksSchema = z.enum(['refuse', 'allow']);

export const rootSchema = z.strictObject({
  name: z.string().trim().min(1).max(200).describe('Shown to clients in list_roots and resource names.'),
  uri: z
    .string()
    .min(1)
    .describe('A file:// URI of an absolute directory, or a directory path relative to the config file.'),
  description: z.string().max(2000).default('').describe('Shown to clients.'),
  read: globList.optional().describe('Globs (relative to the root) of readable files; defaults to accessPolicy.read.'),
  write: globList
    .optional()
    .describe('Globs of writable paths; defaults to accessPolicy.write. An empty list makes the root read-only.'),
  hardLinks: hardLinksSchema
    .optional()
    .describe('Whether files with more than one hard link are served; defaults to accessPolicy.hardLinks.'),
});

export const rootsSchema = z
  .array(rootSchema)
  .min(1, 'at least one root is required')
  .describe('The directories clients may reach; nothing outside them is.');

export const accessPolicySchema = z.strictObject({
  read: globList
    .default(['*.md', '*.markdown', '*.txt', '*.json', '*.jsonl', '*.yaml', '*.yml', '*.csv'])
    .describe('Default read globs for roots that do not set their own.'),
  write: globList.default([]).describe('Default write globs for roots that do not set their own.'),
  hardLinks: hardLinksSchema
    .default('refuse')
    .describe(
      '"refuse": a regular file with more than one hard link is never read (it may be another name of an excluded file).',
    ),
  exclude: globList
    .default([])
    .describe(
      `Always wins, at any depth, and hides entries everywhere. Added to the built-in list: ${BUILTIN_EXCLUDES.join(', ')}.`,
    ),
});

export const grantSchema = z
  .strictObject({
    principals: z.array(z.string().min(1)).default([]).describe('Principal names this grant applies to.'),
    scopes: z.array(scopeToken).default([]).describe('Scopes any of which this grant applies to.'),
    roots: z.array(z.string().min(1)).min(1).default(['*']).describe('Root names, or "*" for every root.'),
    databases: z
      .array(z.string().min(1))
      .default([])
      .describe('Database names, or "*" for every database (read only). None unless named.'),
    access: z
      .array(z.enum(['read', 'write']))
      .min(1)
      .describe('What the grant allows: read (and list), write. Never more than the root itself allows.'),
  })
  .superRefine(grantAppliesToSomeone);

export const grantsSchema = z
  .array(grantSchema)
  .optional()
  .describe(
    `Who may do what on which root. Without grants: everyone authenticated may read with ${DEFAULT_SCOPES.read} and ` +
      `read and write with ${DEFAULT_SCOPES.write} (and, with auth.mode none, the local caller may do everything the roots allow).`,
  );
