import * as z from 'zod';
import type { Config } from '../../config/schema.js';
import { defineTool, READ_ONLY } from '../toolkit.js';

const policyShape = z.object({ read: z.array(z.string()), write: z.array(z.string()) });

const output = z.object({
  roots: z.array(
    z.object({
      uri: z.string(),
      name: z.string(),
      description: z.string(),
      access_policy: policyShape
        .optional()
        .describe("Present only when this root's rules differ from the top-level access_policy."),
    }),
  ),
  access_policy: z.object({
    read: z.array(z.string()),
    write: z.array(z.string()),
    exclude: z.array(z.string()),
  }),
});

export type RootListing = z.output<typeof output>;

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The roots and their policy; with `visible`, only the roots the caller may read at all. */
export function describeRoots(config: Config, visible: (rootName: string) => boolean = () => true): RootListing {
  const defaults = config.accessPolicy;
  return {
    roots: config.roots
      .filter((root) => visible(root.name))
      .map((root) => ({
        uri: root.uri,
        name: root.name,
        description: root.description,
        ...(sameList(root.read, defaults.read) && sameList(root.write, defaults.write)
          ? {}
          : { access_policy: { read: [...root.read], write: [...root.write] } }),
      })),
    access_policy: { read: [...defaults.read], write: [...defaults.write], exclude: [...config.exclude] },
  };
}

export const listRoots = defineTool({
  name: 'list_roots',
  title: 'List roots',
  description:
    'List the workspace roots this server exposes, with the access policy: `read` globs (readable files), ' +
    '`write` globs (writable paths; empty means read-only) and `exclude` globs (never reachable, at any depth). ' +
    'Nothing outside these roots is reachable. A root carries its own access_policy when it differs from the top-level one.',
  input: z.object({}),
  output,
  annotations: READ_ONLY,
  requires: null,
  async run(_args, ctx) {
    const visible = new Set(ctx.files.visibleRoots(ctx.caller.principal).map((root) => root.name));
    return describeRoots(ctx.config, (root) => visible.has(root));
  },
});
