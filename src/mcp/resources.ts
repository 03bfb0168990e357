import type { McpServer, ReadResourceResult, Resource, ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';
import type { Measured } from '../access/gate.js';
import { notFoundOrDenied } from '../errors.js';
import { mimeTypeOf, readTarget } from '../fs/files.js';
import { searchNames } from '../fs/search.js';
import { WalkBudget } from '../fs/walk.js';
import type { RequestScope } from './scope.js';
import { decodeCursor, encodeCursor } from './tools/common.js';

const listCursor = z.object({ start: z.number().int().min(0), after: z.string() });

/**
 * Every readable file is a `file://` resource. The handlers are installed on the low-level server
 * so that every resources/read, whatever its URI, goes through the policy and the audit log; the
 * SDK's template dispatch would answer URIs outside every root without either.
 */
export function installResources(server: McpServer, scope: RequestScope): void {
  const low = server.server;

  // Only the roots the caller may read: the others' names and paths are none of its business.
  low.setRequestHandler('resources/templates/list', async () => ({
    resourceTemplates: scope
      .services()
      .gate.policy.roots.filter((root) =>
        scope.services().gate.policy.grants.permits(scope.principal, root.name, 'read'),
      )
      .map((root) => ({
        uriTemplate: `${root.uri}/{+path}`,
        name: root.name,
        title: root.name,
        description: root.description || `Files in ${root.name}`,
      })),
  }));

  low.setRequestHandler('resources/list', async (request, ctx: ServerContext) => {
    const { gate, config } = scope.services();
    const caller = scope.caller(ctx, 'resources/list', null);
    const resume = request.params?.cursor ? decodeCursor('resources', request.params.cursor, listCursor) : undefined;
    try {
      return await gate.accessEach(
        caller,
        gate.policy.roots.map((root) => ({ op: 'list' as const, path: root.uri })),
        async (starts) => {
          // Lazy: the walk stops as soon as one page is full, and resumes from the cursor.
          const page = await searchNames(gate.viewer(caller), starts, (entry) => entry.type === 'file', {
            limit: config.resources.pageSize,
            resume,
            budget: new WalkBudget(config.limits.walkMaxEntries),
            signal: ctx.mcpReq.signal,
          });
          const resources: Resource[] = page.matches.map((entry) => {
            const mimeType = mimeTypeOf(entry.name);
            return {
              uri: entry.uri,
              name: entry.relPath,
              title: `${entry.root.name}: ${entry.relPath}`,
              ...(mimeType ? { mimeType } : {}),
            };
          });
          return {
            value: { resources, ...(page.next ? { nextCursor: encodeCursor('resources', { ...page.next }) } : {}) },
          };
        },
      );
    } catch (error) {
      throw scope.protocolError(error, caller);
    }
  });

  low.setRequestHandler('resources/read', async (request, ctx: ServerContext): Promise<ReadResourceResult> => {
    const { gate, config } = scope.services();
    const caller = scope.caller(ctx, 'resources/read', null);
    try {
      return await gate.access(
        caller,
        { op: 'read', path: request.params.uri },
        async (target): Promise<Measured<ReadResourceResult>> => {
          if (target.kind === 'missing' || target.kind === 'directory') throw notFoundOrDenied(target.display);
          const result = await readTarget(target, {
            range: { kind: 'whole' },
            maxBytes: config.limits.maxReadBytes,
            signal: ctx.mcpReq.signal,
          });
          if (result.kind === 'binary') {
            return {
              value: {
                contents: [{ uri: target.uri, mimeType: result.mimeType, blob: result.data.toString('base64') }],
              },
              bytes: result.data.length,
            };
          }
          const mimeType = result.info.mimeType ?? 'text/plain';
          return {
            value: { contents: [{ uri: target.uri, mimeType, text: result.text }] },
            bytes: Buffer.byteLength(result.text),
          };
        },
      );
    } catch (error) {
      throw scope.protocolError(error, caller, request.params.uri);
    }
  });
}
