import type { Writable } from 'node:stream';
import { isJSONRPCNotification, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/server';
import type { ToolCatalog } from '../mcp/catalog.js';
import { canonicalRequest } from '../mcp/classify.js';
import { ALWAYS_WRITABLE, type McpServices, type RequestContext } from '../mcp/context.js';
import { route } from '../mcp/dispatch.js';
import type { InternalErrorReporter } from '../mcp/errors.js';
import { type Era, errorFrame, notificationFrame, resultFrame, type ServerInfo } from '../mcp/wire.js';
import { LOCAL } from '../policy/types.js';

export interface StdioFastPathOptions {
  /** The current services: a long-lived connection sees reloads from its next request on. */
  readonly services: () => McpServices;
  readonly cancelAll: AbortSignal;
  readonly connectionId: string;
  readonly catalog: ToolCatalog;
  readonly server: ServerInfo;
  readonly output: Writable;
  readonly reportInternal: InternalErrorReporter;
}

/**
 * The stdio connection's fast path: once the SDK has settled the connection's era (answered the
 * 2025 handshake, or a first 2026-07-28 request), the calls a client makes all day are dispatched
 * from the parsed message straight to the tool, as on HTTP, and answered on stdout; the SDK's
 * per-connection server answers everything else. A call answered here can be cancelled by
 * `notifications/cancelled` like one the SDK serves.
 */
export class StdioFastPath {
  private era: Era | undefined;
  private clientName: string | null = null;
  private readonly calls = new Map<RequestId, AbortController>();
  /** Requests answered here so far (what says the fast path is in use). */
  answered = 0;

  constructor(private readonly options: StdioFastPathOptions) {}

  /** Whether the connection's era is settled (nothing more to learn from the SDK's answers). */
  get pinned(): boolean {
    return this.era !== undefined;
  }

  /** The era the SDK settled the connection in, and the client's name when its handshake gave one. */
  pin(era: Era, clientName: string | null = null): void {
    this.era ??= era;
    if (clientName !== null) this.clientName = clientName;
  }

  /**
   * Takes a message it answers itself (resolving `done` once the answer is written) and says so;
   * false leaves the message to the SDK. A cancellation is seen here and still passed on.
   */
  take(message: JSONRPCMessage, done: () => void): boolean {
    if (isJSONRPCNotification(message)) {
      if (message.method === 'notifications/cancelled') {
        const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
        if (id !== undefined) this.calls.get(id)?.abort();
      }
      return false;
    }
    if (this.era === undefined) return false;
    const services = this.options.services();
    if (!services.config.server.fastPath) return false;
    const canonical = canonicalRequest(message);
    if (canonical?.era !== this.era) return false;
    const request = message as unknown as { id: RequestId; method: string; params?: Record<string, unknown> };
    if (this.calls.has(request.id)) return false;
    const abort = new AbortController();
    const context: RequestContext = {
      services,
      // stdio is the local user's own process: the roots' policies apply, grants are for HTTP callers.
      principal: LOCAL,
      requestId: `${this.options.connectionId}:${String(request.id)}`,
      transport: 'stdio',
      userAgent: null,
      clientName: this.clientName,
      signal: abort.signal,
      cancelAll: this.options.cancelAll,
      flow: ALWAYS_WRITABLE,
      outcome: {},
      reportInternal: this.options.reportInternal,
    };
    const routed = route({ id: request.id, method: request.method, params: request.params }, services, context, {
      era: this.era,
      catalog: this.options.catalog,
      server: this.options.server,
    });
    if (!routed) return false;
    this.calls.set(request.id, abort);
    this.answered += 1;
    void (async () => {
      let line: string;
      try {
        const answer = await routed.run(context, (method, params) => this.write(notificationFrame(method, params)));
        line = answer.kind === 'result' ? resultFrame(answer.text, request.id) : errorFrame(answer.error, request.id);
      } catch (error) {
        context.reportInternal(error, context.requestId);
        line = errorFrame({ code: -32603, message: 'Internal error' }, request.id);
      }
      await this.write(line);
    })().finally(() => {
      this.calls.delete(request.id);
      done();
    });
    return true;
  }

  /** One line on stdout, waiting for the pipe when it is full. */
  private write(line: string): Promise<void> {
    const { output } = this.options;
    if (output.write(`${line}\n`)) return Promise.resolve();
    return new Promise((resolve) => {
      const settle = () => {
        output.off('drain', settle);
        output.off('close', settle);
        resolve();
      };
      output.once('drain', settle);
      output.once('close', settle);
    });
  }
}
