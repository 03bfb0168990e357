import type { McpServer, ReadResourceResult, Resource, ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { mimeTypeOf } from '../access/files.js';
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
      .files.visibleRoots(scope.principal)
      .map((root) => ({
        uriTemplate: `${root.uri}/{+path}`,
        name: root.name,
        title: root.name,
        description: root.description || `Files in ${root.name}`,
      })),
  }));

  low.setRequestHandler('resources/list', async (request, ctx: ServerContext) => {
    const { files, config } = scope.services();
    const caller = scope.caller(ctx, 'resources/list', null);
    const resume = request.params?.cursor ? decodeCursor('resources', request.params.cursor, listCursor) : undefined;
    try {
      // Lazy: the walk stops as soon as one page is full, and resumes from the cursor.
      const page = await files.resources(caller, {
        limit: config.resources.pageSize,
        resume,
        maxEntries: config.limits.walkMaxEntries,
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
      return { resources, ...(page.next ? { nextCursor: encodeCursor('resources', { ...page.next }) } : {}) };
    } catch (error) {
      throw scope.protocolError(error, caller);
    }
  });

  low.setRequestHandler('resources/read', async (request, ctx: ServerContext): Promise<ReadResourceResult> => {
    const { files, config } = scope.services();
    const caller = scope.caller(ctx, 'resources/read', null);
    try {
      const result = await files.readResource(caller, request.params.uri, config.limits.maxReadBytes);
      const { uri } = result.info;
      if (result.kind === 'binary')
        return { contents: [{ uri, mimeType: result.mimeType, blob: result.data.toString('base64') }] };
      return { contents: [{ uri, mimeType: result.info.mimeType ?? 'text/plain', text: result.text }] };
    } catch (error) {
      throw scope.protocolError(error, caller, request.params.uri);
    }
  });
}
