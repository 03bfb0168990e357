import type { ServerResponse } from 'node:http';
import { type JsonRpcId, jsonRpcError, type McpdError } from '../errors.js';
import type { StreamFlow } from '../mcp/context.js';

/** The flow of one response: writable unless Node's buffer for it is full. */
export function responseFlow(res: ServerResponse): StreamFlow {
  return {
    whenWritable: () =>
      !res.writableNeedDrain || res.destroyed
        ? Promise.resolve()
        : new Promise((resolve) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              resolve();
            };
            res.on('drain', done);
            res.on('close', done);
          }),
  };
}

/**
 * Drops a streaming client that has taken nothing for `timeoutMs`: a reader that stopped reading
 * would otherwise hold its buffers (and the call's slot) for as long as it likes.
 */
export class StallWatch {
  private readonly timer: NodeJS.Timeout;
  private stalledSince: number | undefined;

  constructor(res: ServerResponse, timeoutMs: number, onStall: () => void) {
    this.timer = setInterval(
      () => {
        if (!res.writableNeedDrain) {
          this.stalledSince = undefined;
          return;
        }
        this.stalledSince ??= Date.now();
        if (Date.now() - this.stalledSince >= timeoutMs) {
          this.stop();
          onStall();
          res.destroy();
        }
      },
      Math.max(50, Math.floor(timeoutMs / 4)),
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

export interface SendOptions {
  /** Extra headers for this response. */
  readonly headers: Record<string, string>;
  /** An SSE client that has taken nothing for this long is cut off. */
  readonly stallTimeoutMs: number;
  readonly onStall: () => void;
}

/**
 * Writes a web Response to a Node response, honouring backpressure: the next chunk is pulled only
 * when the socket has room. Streams get their headers at once (proxies and clients see the stream
 * open) and a watchdog that drops a reader which stopped reading.
 */
export async function sendResponse(res: ServerResponse, response: Response, options: SendOptions): Promise<void> {
  const headers: Record<string, string> = {};
  // Hop-by-hop headers are Node's to manage (a client's Connection: close must win).
  for (const [name, value] of response.headers) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  Object.assign(headers, options.headers);
  const streaming = (headers['content-type'] ?? '').startsWith('text/event-stream');
  if (streaming) headers['x-accel-buffering'] = 'no';
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  if (streaming) res.flushHeaders();
  const reader = response.body.getReader();
  const watchdog = streaming
    ? new StallWatch(res, options.stallTimeoutMs, () => {
        options.onStall();
        void reader.cancel('client stopped reading').catch(() => {});
      })
    : undefined;
  const closed = new Promise<void>((resolve) => res.once('close', () => resolve()));
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), closed.then(() => ({ done: true as const, value: undefined }))]);
      if (next.done || res.destroyed) break;
      if (!res.write(next.value)) {
        await Promise.race([new Promise<void>((resolve) => res.once('drain', () => resolve())), closed]);
      }
    }
  } finally {
    watchdog?.stop();
    if (res.destroyed) void reader.cancel().catch(() => {});
    else res.end();
  }
}

/** A JSON body, with its length and no caching. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** A refusal at the edge: the catalogue's HTTP status, and the JSON-RPC error the one builder makes. */
export function sendError(
  res: ServerResponse,
  error: McpdError,
  headers: Record<string, string> = {},
  id: JsonRpcId = null,
): void {
  // A code without an edge status reaching here is a bug of ours: a 500, never a misleading 200.
  sendJson(res, error.httpStatus ?? 500, jsonRpcError(error, id), headers);
}
