import type { CallToolResult, ReadResourceResult, Resource } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { DATABASE_URI_SCHEME } from '../access/databases.js';
import { mimeTypeOf } from '../access/files.js';
import type { Caller } from '../access/gate.js';
import { isMcpdError, McpdError, notFoundOrDenied } from '../errors.js';
import type { Principal } from '../policy/types.js';
import type { McpServices, Outcome, StreamFlow } from './context.js';
import { type InternalErrorReporter, noteFailure, toProtocolError, toToolError } from './errors.js';
import { type ToolContext, type ToolDefinition, toolResult } from './toolkit.js';
import { decodeCursor, encodeCursor } from './tools/common.js';

/**
 * What serving one request runs: a tool call, or a resources request, whichever way it arrived
 * (the HTTP fast path, the SDK's reference handler, stdio). Each is written once here, so every
 * path answers alike and is audited alike.
 */

/** A progress notification for the request being served (related to it, on its stream). */
export type Notify = (method: string, params: Record<string, unknown>) => Promise<void>;

export interface ToolCall {
  /** Who calls, for the audit record; its signal is the client's (a cancel, a closed stream). */
  readonly caller: Caller & { readonly signal: AbortSignal };
  readonly services: McpServices;
  /** Aborted when the process gives up on in-flight work (shutdown past its grace period). */
  readonly cancelAll: AbortSignal;
  readonly progressToken: string | number | undefined;
  readonly notify: Notify;
  /** Progress where there is no token to report it under (a task keeps it as its status message). */
  readonly onProgress?: (progress: number, total: number | undefined) => void;
  readonly flow: StreamFlow;
  readonly outcome: Outcome;
  readonly reportInternal: InternalErrorReporter;
}

/** What a tool was stopped by, when it was: the deadline and shutdown abort with their own error. */
function stoppedBy(signal: AbortSignal): McpdError {
  return isMcpdError(signal.reason) ? signal.reason : new McpdError('CANCELLED', 'the request was cancelled');
}

/**
 * Runs a tool on arguments its input schema accepted: under its deadline, stoppable by the client
 * and by shutdown, reporting progress when asked, its result bounded in bytes. Never throws: a
 * failure is a result with `isError`, which the model can read.
 */
export async function callTool(tool: ToolDefinition, args: unknown, call: ToolCall): Promise<CallToolResult> {
  const { config, files, databases } = call.services;
  const limitMs = config.limits.toolTimeouts[tool.name] ?? config.limits.toolTimeoutMs;
  // The client, the deadline and shutdown can each stop the work; the signal reaches the file layer.
  const stop = new AbortController();
  const timer = setTimeout(
    () => stop.abort(new McpdError('TIMEOUT', `${tool.name} ran longer than its ${limitMs} ms limit and was stopped`)),
    limitMs,
  );
  const release = follow(stop, [call.caller.signal, call.cancelAll]);
  const signal = stop.signal;
  const caller = { ...call.caller, signal };
  const token = call.progressToken;
  const context: ToolContext = {
    caller,
    files,
    databases,
    config,
    signal,
    progress:
      token === undefined
        ? async (progress, total) => call.onProgress?.(progress, total)
        : async (progress, total, message) => {
            await call.flow.whenWritable();
            signal.throwIfAborted();
            await call.notify('notifications/progress', {
              progressToken: token,
              progress,
              ...(total === undefined ? {} : { total }),
              message,
            });
          },
  };
  try {
    return toolResult(tool, await tool.run(args as never, context));
  } catch (error) {
    // Whatever a stopped call failed with (a closed stream, an abort), it was stopped.
    const failure = toToolError(signal.aborted ? stoppedBy(signal) : error, caller.requestId, call.reportInternal);
    noteFailure(call.outcome, failure);
    return failure;
  } finally {
    clearTimeout(timer);
    release();
  }
}

/**
 * Aborts `target` when any of `sources` aborts, with its reason, until released: what
 * AbortSignal.any does, without its weak-reference bookkeeping on every call (and without leaving
 * a listener on the process-wide shutdown signal once the call is over).
 */
function follow(target: AbortController, sources: readonly AbortSignal[]): () => void {
  const listeners: [AbortSignal, () => void][] = [];
  for (const source of sources) {
    if (source.aborted) {
      target.abort(source.reason);
      break;
    }
    const listener = () => target.abort(source.reason);
    source.addEventListener('abort', listener, { once: true });
    listeners.push([source, listener]);
  }
  return () => {
    for (const [source, listener] of listeners) source.removeEventListener('abort', listener);
  };
}

/**
 * A result above `limits.maxResultBytes` once serialised (in bytes, as it goes on the wire) becomes
 * a TOO_LARGE error; the transport measures the text it is about to send, so nothing is
 * serialised twice to be measured.
 */
export function boundResult(
  result: CallToolResult,
  bytes: number,
  call: Pick<ToolCall, 'services' | 'caller' | 'outcome' | 'reportInternal'>,
): CallToolResult {
  const max = call.services.config.limits.maxResultBytes;
  if (bytes <= max) return result;
  const error = new McpdError(
    'TOO_LARGE',
    `the result is ${bytes} bytes, above the ${max}-byte response limit; ` +
      'narrow the request (a smaller limit, a range, fewer files)',
  );
  const failure = toToolError(error, call.caller.requestId, call.reportInternal);
  noteFailure(call.outcome, failure);
  return failure;
}

/** What the resources requests need of the request: who asks, and where failures are reported. */
export interface ResourceCall {
  readonly caller: Caller;
  readonly services: McpServices;
  readonly outcome: Outcome;
  readonly reportInternal: InternalErrorReporter;
}

/** A failure of a resources request as a JSON-RPC error, the outcome noted for the edge. */
function failed(call: ResourceCall, error: unknown, uri?: string): Error {
  const failure = toProtocolError(error, call.caller.requestId, call.reportInternal, uri);
  noteFailure(call.outcome, failure);
  return failure;
}

/** Only the roots the caller may read: the others' names and paths are none of its business. */
export function resourceTemplates(services: McpServices, principal: Principal) {
  return {
    resourceTemplates: [
      ...services.files.visibleRoots(principal).map((root) => ({
        uriTemplate: `${root.uri}/{+path}`,
        name: root.name,
        title: root.name,
        description: root.description || `Files in ${root.name}`,
      })),
      ...services.databases.list(principal).map((database) => ({
        uriTemplate: `db://${encodeURIComponent(database.name)}/{table}`,
        name: database.name,
        title: database.name,
        description: database.description || `Tables of ${database.name}`,
        mimeType: 'application/json',
      })),
    ],
  };
}

/** Where a resources/list page resumes: in the database tables (listed first), or in the file walk. */
const listCursor = z.union([
  z.object({ start: z.number().int().min(0), after: z.string() }),
  z.object({ tables: z.number().int().min(0) }),
]);

/**
 * A page of readable files; lazy: the walk stops once the page is full and resumes from the cursor.
 * The first page starts with the `db://` resources: one per visible table of each database.
 */
export async function listResources(
  call: ResourceCall,
  cursor: string | undefined,
): Promise<{ resources: Resource[]; nextCursor?: string }> {
  const { files, config, databases } = call.services;
  const pageSize = config.resources.pageSize;
  try {
    const resume = cursor ? decodeCursor('resources', cursor, listCursor) : undefined;
    let tables: Resource[] = [];
    if (resume === undefined || 'tables' in resume) {
      const offset = resume?.tables ?? 0;
      const all = (await databases.resources(call.caller)).map((table) => ({
        uri: table.uri,
        name: `${table.database}/${table.table}`,
        title: `${table.database}: ${table.kind} ${table.table}`,
        mimeType: 'application/json',
      }));
      tables = all.slice(offset, offset + pageSize);
      // A page full of tables: the next one resumes after them (the files start once they are all told).
      if (tables.length === pageSize) {
        return { resources: tables, nextCursor: encodeCursor('resources', { tables: offset + pageSize }) };
      }
    }
    const page = await files.resources(call.caller, {
      limit: pageSize - tables.length,
      resume: resume && 'start' in resume ? { start: resume.start, after: resume.after } : undefined,
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
    return {
      resources: [...tables, ...resources],
      ...(page.next ? { nextCursor: encodeCursor('resources', { ...page.next }) } : {}),
    };
  } catch (error) {
    throw failed(call, error);
  }
}

/** One file as a resource, through the policy and the audit like any read. */
export async function readResource(call: ResourceCall, uri: string): Promise<ReadResourceResult> {
  const { files, config, databases } = call.services;
  try {
    if (uri.startsWith(DATABASE_URI_SCHEME)) {
      const table = await databases.readTable(call.caller, uri);
      if (!table) throw notFoundOrDenied(null);
      const { sample } = table;
      const text = JSON.stringify({
        database: table.database,
        table: table.table.name,
        kind: table.table.kind,
        columns: table.table.columns,
        sample: { columns: sample.columns, rows: sample.rows, truncated: sample.truncated },
      });
      return { contents: [{ uri, mimeType: 'application/json', text }] };
    }
    const result = await files.readResource(call.caller, uri, config.limits.maxReadBytes);
    const info = result.info;
    if (result.kind === 'binary') {
      return { contents: [{ uri: info.uri, mimeType: result.mimeType, blob: result.data.toString('base64') }] };
    }
    return { contents: [{ uri: info.uri, mimeType: info.mimeType ?? 'text/plain', text: result.text }] };
  } catch (error) {
    throw failed(call, error, uri);
  }
}
