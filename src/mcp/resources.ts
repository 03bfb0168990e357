import type { McpServer, ServerContext } from '@modelcontextprotocol/server';
import { listResources, readResource, resourceTemplates } from './calls.js';
import type { RequestScope } from './scope.js';

/**
 * Every readable file is a `file://` resource. The handlers are installed on the low-level server
 * so that every resources/read, whatever its URI, goes through the policy and the audit log; the
 * SDK's template dispatch would answer URIs outside every root without either. The handlers
 * themselves are the ones the fast path runs (mcp/calls.ts).
 */
export function installResources(server: McpServer, scope: RequestScope): void {
  const low = server.server;
  const call = (ctx: ServerContext, method: string) => ({
    caller: scope.caller(ctx, method, null),
    services: scope.services(),
    outcome: scope.outcome,
    reportInternal: scope.reportInternal,
  });
  low.setRequestHandler('resources/templates/list', async () => resourceTemplates(scope.services(), scope.principal));
  low.setRequestHandler('resources/list', (request, ctx) =>
    listResources(call(ctx, 'resources/list'), request.params?.cursor),
  );
  low.setRequestHandler('resources/read', (request, ctx) =>
    readResource(call(ctx, 'resources/read'), request.params.uri),
  );
}
