import { McpServer, type ServerCapabilities, type ServerContext } from '@modelcontextprotocol/server';
import { McpdError } from '../errors.js';
import { toToolError } from './errors.js';
import { installResources } from './resources.js';
import type { RequestScope } from './scope.js';
import { asText, type ToolContext, type ToolDefinition } from './toolkit.js';
import { TOOLS } from './tools/index.js';

export const SERVER_NAME = 'mcpd';

const INSTRUCTIONS =
  'mcpd gives scoped, audited access to workspace roots. Call list_roots first: it names the roots and their ' +
  'access policy. Paths may be file:// URIs, absolute paths inside a root, or paths relative to a root. ' +
  'Excluded and unreadable files behave as if they did not exist. Every access is audited.';

/** How this instance delivers change notifications, which depends on transport and era. */
export type SubscriptionStyle =
  /** 2026-07-28: subscriptions/listen, served by the SDK's entry from its event bus. */
  | 'listen'
  /** 2025-era connection (stdio): resources/subscribe, unsolicited notifications on the connection. */
  | 'legacy'
  /** 2025-era stateless HTTP: no stream to deliver on, so no subscriptions are offered. */
  | 'none';

export interface ServerBuildOptions {
  readonly version: string;
  readonly subscriptions: SubscriptionStyle;
  /** For 'legacy': the connection's subscription set, which decides what reaches this client. */
  readonly legacySubscriptions?: Set<string>;
}

function capabilities(style: SubscriptionStyle): ServerCapabilities {
  return {
    tools: { listChanged: false },
    resources: { listChanged: style !== 'none', subscribe: style !== 'none' },
  };
}

/** One fresh server instance: every tool and the resource handlers, bound to a request scope. */
export function buildServer(scope: RequestScope, options: ServerBuildOptions): McpServer {
  const server = new McpServer(
    { name: SERVER_NAME, title: 'mcpd workspace server', version: options.version },
    { capabilities: capabilities(options.subscriptions), instructions: INSTRUCTIONS },
  );
  for (const tool of TOOLS) registerTool(server, scope, tool);
  installResources(server, scope);
  if (options.subscriptions === 'legacy' && options.legacySubscriptions) {
    installLegacySubscriptions(server, scope, options.legacySubscriptions);
  }
  return server;
}

/** 2025-era resources/subscribe: allowed only for URIs the caller could read, and audited as such. */
function installLegacySubscriptions(server: McpServer, scope: RequestScope, subscribed: Set<string>): void {
  const handle =
    (method: 'resources/subscribe' | 'resources/unsubscribe') =>
    async (request: { params: { uri: string } }, ctx: ServerContext) => {
      const caller = scope.caller(ctx, method, null);
      try {
        return await scope.services().gate.access(caller, { op: 'read', path: request.params.uri }, async (target) => {
          if (method === 'resources/subscribe') subscribed.add(target.uri);
          else subscribed.delete(target.uri);
          return { value: {} };
        });
      } catch (error) {
        throw scope.protocolError(error, caller, request.params.uri);
      }
    };
  server.server.setRequestHandler('resources/subscribe', handle('resources/subscribe'));
  server.server.setRequestHandler('resources/unsubscribe', handle('resources/unsubscribe'));
}

function registerTool(server: McpServer, scope: RequestScope, tool: ToolDefinition): void {
  server.registerTool(
    tool.name,
    {
      title: tool.title,
      description: tool.description,
      inputSchema: tool.input,
      outputSchema: tool.output,
      annotations: { title: tool.title, ...tool.annotations },
    },
    async (args: unknown, ctx: ServerContext) => {
      const caller = scope.caller(ctx, 'tools/call', tool.name);
      const { gate, config } = scope.services();
      const token = ctx.mcpReq._meta?.progressToken;
      const toolContext: ToolContext = {
        caller,
        gate,
        config,
        signal: ctx.mcpReq.signal,
        progress:
          token === undefined
            ? async () => {}
            : (progress, total, message) =>
                ctx.mcpReq.notify({
                  method: 'notifications/progress',
                  params: { progressToken: token, progress, ...(total === undefined ? {} : { total }), message },
                }),
      };
      try {
        const output = await tool.run(args, toolContext);
        const result = {
          content: output.content ?? asText(output.structured),
          structuredContent: output.structured as Record<string, unknown>,
        };
        const size = JSON.stringify(result).length;
        if (size > config.limits.maxResultBytes) {
          throw new McpdError(
            'TOO_LARGE',
            `the result is ${size} bytes, above the ${config.limits.maxResultBytes}-byte response limit; ` +
              'narrow the request (a smaller limit, a range, fewer files)',
          );
        }
        return result;
      } catch (error) {
        // Whatever a cancelled call failed with (a closed stream, an abort), it was cancelled.
        const failure = toolContext.signal.aborted ? new McpdError('CANCELLED', 'the request was cancelled') : error;
        return toToolError(failure, caller.requestId, scope.reportInternal);
      }
    },
  );
}
