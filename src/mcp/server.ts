import {
  McpServer,
  type ScopeChallengeHandler,
  type ServerCapabilities,
  type ServerContext,
} from '@modelcontextprotocol/server';
import { pause } from '../slices.js';
import { boundResult, callTool } from './calls.js';
import { installResources } from './resources.js';
import type { RequestScope } from './scope.js';
import { TASKS_EXTENSION } from './tasks.js';
import type { ToolDefinition } from './toolkit.js';
import { TOOLS } from './tools/index.js';
import type { ServerInfo } from './wire.js';

export const SERVER_NAME = 'mcpd';

const identities = new Map<string, ServerInfo>();

/** Who this server says it is, one object per version (the fast path's cached answers embed it). */
export function serverInfo(version: string): ServerInfo {
  let info = identities.get(version);
  if (!info) {
    info = { name: SERVER_NAME, title: 'mcpd workspace server', version };
    identities.set(version, info);
  }
  return info;
}

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
    // 2026-07-28 over HTTP: long calls may answer with a task (mcp/tasks.ts).
    ...(style === 'listen' ? { extensions: { [TASKS_EXTENSION]: {} } } : {}),
  };
}

/** One fresh server instance: every tool and the resource handlers, bound to a request scope. */
export function buildServer(scope: RequestScope, options: ServerBuildOptions): McpServer {
  const server = new McpServer(
    { ...serverInfo(options.version) },
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
        const uri = await scope.services().files.subscribe(caller, request.params.uri);
        if (method === 'resources/subscribe') subscribed.add(uri);
        else subscribed.delete(uri);
        return {};
      } catch (error) {
        throw scope.protocolError(error, caller, request.params.uri);
      }
    };
  server.server.setRequestHandler('resources/subscribe', handle('resources/subscribe'));
  server.server.setRequestHandler('resources/unsubscribe', handle('resources/unsubscribe'));
}

/**
 * A 2026-style scope challenge for a caller none of whose grants allows what the tool needs
 * anywhere: HTTP 403 insufficient_scope naming the scopes that would. Audited like any refusal.
 */
function scopeChallenge(scope: RequestScope, tool: ToolDefinition): ScopeChallengeHandler | undefined {
  const needed = tool.requires;
  if (needed === null) return undefined;
  return ({ request, authInfo }) => {
    if (!authInfo) return undefined;
    const { files } = scope.services();
    if (files.permitsAnywhere(scope.principal, needed)) return undefined;
    const missing = files.scopesGranting(needed);
    const [first, ...rest] = [...new Set([...scope.principal.scopes, ...missing])];
    // With no scope that would help, there is nothing to challenge for: the grants refuse each path
    // of the call (and those refusals are the audit records).
    if (first === undefined || missing.length === 0) return undefined;
    files.refuse(scope.callerOf(request, tool.name), {
      op: needed,
      rule: 'grant:insufficient-scope',
      reason: `principal "${scope.principal.id}" has no ${needed} grant on any root`,
      requested: tool.name,
    });
    return { scopes: [first, ...rest], errorDescription: `${tool.name} needs ${needed} access` };
  };
}

function registerTool(server: McpServer, scope: RequestScope, tool: ToolDefinition): void {
  const challenge = scopeChallenge(scope, tool);
  server.registerTool(
    tool.name,
    {
      title: tool.title,
      description: tool.description,
      inputSchema: tool.input,
      ...(tool.kind === 'structured' ? { outputSchema: tool.output } : {}),
      annotations: { title: tool.title, ...tool.annotations },
      ...(challenge ? { scopeChallenge: challenge } : {}),
    },
    async (args: unknown, ctx: ServerContext) => {
      const call = {
        caller: scope.caller(ctx, 'tools/call', tool.name),
        services: scope.services(),
        cancelAll: scope.cancelAll,
        progressToken: ctx.mcpReq._meta?.progressToken,
        notify: (method: string, params: Record<string, unknown>) =>
          ctx.mcpReq.notify({ method, params } as Parameters<typeof ctx.mcpReq.notify>[0]),
        flow: scope.flow,
        outcome: scope.outcome,
        reportInternal: scope.reportInternal,
      };
      const result = await callTool(tool, args, call);
      // What follows (measuring, then the SDK validating and serialising) is milliseconds for a
      // big result, and a batch finishes many at once: each goes on in the loop's shared slice.
      const turn = pause();
      if (turn) await turn;
      // Off the fast path, the result is measured here; the SDK serialises it again to send it.
      return boundResult(result, Buffer.byteLength(JSON.stringify(result)), call);
    },
  );
}
