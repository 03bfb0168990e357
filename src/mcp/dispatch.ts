import { type CallToolResult, ProtocolError, type RequestId } from '@modelcontextprotocol/server';
import type { ChangeFeed } from '../access/changes.js';
import { pause } from '../slices.js';
import { boundResult, callTool, listResources, type Notify, readResource, resourceTemplates } from './calls.js';
import type { ToolCatalog } from './catalog.js';
import { callerFor, type McpServices, type RequestContext } from './context.js';
import { noteFailure, toToolError } from './errors.js';
import { taskListenRoute } from './taskListen.js';
import { declaresTasks, TASKS_EXTENSION, type TaskRunner } from './tasks.js';
import { asJson, type ToolDefinition } from './toolkit.js';
import {
  type Era,
  encodeErrorCode,
  encodeResult,
  encodeToolResult,
  type ProtocolFailure,
  type ServerInfo,
  serialiseStructuredResult,
} from './wire.js';

/**
 * Dispatch from a parsed JSON-RPC request straight to what answers it: the calls a client makes
 * all day (tools/call, tools/list, resources/*) are answered here, with no server instance built
 * and nothing re-parsed. Whatever this layer does not answer itself, or cannot prove it would
 * answer exactly as the SDK's reference handler does (an unknown tool, arguments the schema
 * refuses, a token to be challenged for a scope, any other method), it declines before doing
 * anything, and the reference handler answers.
 */

export interface InboundRequest {
  readonly id: RequestId;
  readonly method: string;
  readonly params: Record<string, unknown> | undefined;
}

/** What a served request answers: a result already encoded for its era and serialised, or an error. */
export type Answer =
  | { readonly kind: 'result'; readonly text: string }
  | { readonly kind: 'error'; readonly error: ProtocolFailure };

export interface Route {
  /** Serves the request; `notify` sends a notification on the request's own stream. */
  run(context: RequestContext, notify: Notify): Promise<Answer>;
}

export interface DispatchOptions {
  readonly era: Era;
  readonly catalog: ToolCatalog;
  readonly server: ServerInfo;
  /** Long calls as tasks, for 2026-07-28 clients that declare the extension (HTTP only). */
  readonly tasks?: TaskRunner;
  /** Changes to roots, for the listen streams served here (those that follow tasks). */
  readonly changes?: ChangeFeed;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function metaOf(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const meta = params?._meta;
  return isPlainObject(meta) ? meta : undefined;
}

/**
 * The route for a request this layer answers, or undefined to leave it to the reference handler.
 * Synchronous and free of side effects: declining must cost nothing and record nothing.
 */
export function route(
  request: InboundRequest,
  services: McpServices,
  context: Pick<RequestContext, 'principal'>,
  options: DispatchOptions,
): Route | undefined {
  const { params } = request;
  if (params !== undefined && !isPlainObject(params)) return undefined;
  if (params?._meta !== undefined && !isPlainObject(params._meta)) return undefined;
  switch (request.method) {
    case 'tools/call':
      return toolCallRoute(request, services, context, options);
    case 'tools/list':
      if (params?.cursor !== undefined) return undefined;
      return {
        run: async () => ({ kind: 'result', text: options.catalog.listing[options.era] }),
      };
    case 'resources/templates/list':
      if (params?.cursor !== undefined) return undefined;
      return resourceRoute(request, options, async (ctx) => resourceTemplates(ctx.services, ctx.principal));
    case 'resources/list': {
      const cursor = params?.cursor;
      if (cursor !== undefined && typeof cursor !== 'string') return undefined;
      return resourceRoute(request, options, (ctx) =>
        listResources(resourceCall(ctx, request, 'resources/list'), cursor),
      );
    }
    case 'resources/read': {
      const uri = params?.uri;
      if (typeof uri !== 'string') return undefined;
      return resourceRoute(request, options, (ctx) => readResource(resourceCall(ctx, request, 'resources/read'), uri));
    }
    case 'tasks/get':
    case 'tasks/cancel':
    case 'tasks/update':
      return taskRoute(request, options);
    case 'subscriptions/listen':
      return taskListen(request, options);
    default:
      return undefined;
  }
}

/**
 * A listen stream that asks for task status notifications (`taskIds`) is served here, since the
 * SDK's router knows only the four change notifications (mcp/taskListen.ts); without the Tasks
 * extension declared it is refused, as the extension requires (-32021). Every other listen
 * stream is the reference handler's.
 */
function taskListen(request: InboundRequest, options: DispatchOptions): Route | undefined {
  if (options.era !== 'modern') return undefined;
  const notifications = request.params?.notifications as { taskIds?: unknown } | undefined;
  if (notifications?.taskIds === undefined) return undefined;
  if (declaresTasks(metaOf(request.params))) {
    const { tasks, changes } = options;
    return tasks && changes ? taskListenRoute(request, { tasks, changes, server: options.server }) : undefined;
  }
  return {
    run: async () => ({
      kind: 'error',
      error: {
        code: MISSING_REQUIRED_CLIENT_CAPABILITY,
        message: 'Missing required client capability',
        data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
      },
    }),
  };
}

/** The Tasks extension's error for a request that needs a capability the client did not declare. */
const MISSING_REQUIRED_CLIENT_CAPABILITY = -32021;

/** The Tasks extension's methods, for the principal that started the task and nobody else. */
function taskRoute(request: InboundRequest, options: DispatchOptions): Route | undefined {
  const tasks = options.tasks;
  if (options.era !== 'modern' || !tasks) return undefined;
  const taskId = request.params?.taskId;
  return {
    async run(context) {
      const answer = (result: Record<string, unknown> | ProtocolFailure): Answer =>
        'code' in result && typeof result.code === 'number'
          ? { kind: 'error', error: result as ProtocolFailure }
          : {
              kind: 'result',
              text: JSON.stringify(
                encodeResult(options.era, request.method, result as Record<string, unknown>, options.server),
              ),
            };
      if (typeof taskId !== 'string' || taskId.length === 0 || taskId.length > 128) {
        return answer({ code: -32602, message: 'params.taskId must be a task id' });
      }
      if (request.method === 'tasks/cancel') return answer(await tasks.cancel(context.principal, taskId));
      const task = await tasks.get(context.principal, taskId);
      // No task of mcpd's asks for input: an update is acknowledged and changes nothing.
      if (request.method === 'tasks/update' && !('code' in task && typeof task.code === 'number')) return answer({});
      return answer(task);
    },
  };
}

function resourceCall(context: RequestContext, request: InboundRequest, method: string) {
  return {
    caller: callerFor(context, metaOf(request.params), method, null),
    services: context.services,
    outcome: context.outcome,
    reportInternal: context.reportInternal,
  };
}

function resourceRoute(
  request: InboundRequest,
  options: DispatchOptions,
  serve: (context: RequestContext) => Promise<Record<string, unknown>>,
): Route {
  return {
    async run(context) {
      try {
        const result = await serve(context);
        return {
          kind: 'result',
          text: JSON.stringify(encodeResult(options.era, request.method, result, options.server)),
        };
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        return {
          kind: 'error',
          error: {
            code: encodeErrorCode(options.era, error.code),
            message: error.message,
            ...(error.data === undefined ? {} : { data: error.data }),
          },
        };
      }
    },
  };
}

function toolCallRoute(
  request: InboundRequest,
  services: McpServices,
  context: Pick<RequestContext, 'principal'>,
  options: DispatchOptions,
): Route | undefined {
  const params = request.params;
  const name = params?.name;
  if (typeof name !== 'string') return undefined;
  const tool: ToolDefinition | undefined = options.catalog.byName.get(name);
  if (!tool) return undefined;
  const raw = params?.arguments;
  if (raw !== undefined && !isPlainObject(raw)) return undefined;
  const meta = metaOf(params);
  const progressToken = meta?.progressToken;
  if (progressToken !== undefined && typeof progressToken !== 'string' && typeof progressToken !== 'number') {
    return undefined;
  }
  // A caller with no grant for what the tool needs anywhere may be challenged for a scope: the
  // reference handler's business (and a rare one).
  if (tool.requires !== null && !services.files.permitsAnywhere(context.principal, tool.requires)) return undefined;
  const parsed = tool.input.safeParse(raw ?? {});
  if (!parsed.success) return undefined;
  return {
    async run(ctx, notify) {
      const call = {
        caller: callerFor(ctx, meta, 'tools/call', tool.name),
        services: ctx.services,
        cancelAll: ctx.cancelAll,
        progressToken,
        notify,
        flow: ctx.flow,
        outcome: ctx.outcome,
        reportInternal: ctx.reportInternal,
      };
      const tasks = options.tasks;
      if (tasks && options.era === 'modern' && tasks.eligible(tool, meta)) {
        let created: Record<string, unknown> | undefined;
        try {
          created = await tasks.start(tool, parsed.data, call);
        } catch (error) {
          const failure = toToolError(error, call.caller.requestId, call.reportInternal);
          noteFailure(call.outcome, failure);
          return {
            kind: 'result',
            text: encodeToolResult(options.era, failure, JSON.stringify(failure), options.server),
          };
        }
        if (created) {
          return {
            kind: 'result',
            text: JSON.stringify(encodeResult(options.era, 'tools/call', created, options.server)),
          };
        }
        // The store could not take it: a plain call, as the extension allows.
      }
      const result = await callTool(tool, parsed.data, call);
      // A page of a thousand entries is milliseconds of serialising: in the loop's shared slice.
      const turn = pause();
      if (turn) await turn;
      const valueJson = renderedAsJson(tool, result);
      const bareText = valueJson === undefined ? JSON.stringify(result) : serialiseStructuredResult(valueJson);
      const bounded = boundResult(result, Buffer.byteLength(bareText), call);
      if (bounded === result)
        return { kind: 'result', text: encodeToolResult(options.era, result, bareText, options.server) };
      return { kind: 'result', text: encodeToolResult(options.era, bounded, JSON.stringify(bounded), options.server) };
    },
  };
}

/** The JSON of a structured tool's value when its only content is that JSON (the default rendering). */
function renderedAsJson(tool: ToolDefinition, result: CallToolResult): string | undefined {
  if (tool.kind !== 'structured' || tool.render !== asJson || result.isError) return undefined;
  const [block, ...rest] = result.content;
  return block?.type === 'text' && rest.length === 0 ? block.text : undefined;
}
