/** Raw Streamable HTTP requests, for what a well-behaved SDK client would never send. */

export const MODERN_VERSION = '2026-07-28';

export function modernMeta(name = 'raw-test') {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientInfo': { name, version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
  };
}

export interface RawOptions {
  readonly headers?: Record<string, string>;
  readonly id?: number | string;
  /** Use this exact body text instead of a JSON-RPC request. */
  readonly body?: string;
  readonly signal?: AbortSignal;
}

/** POSTs a 2026-07-28 request with the per-request envelope and the standard headers. */
export function postModern(
  url: string,
  method: string,
  params: Record<string, unknown> = {},
  options: RawOptions = {},
) {
  const body =
    options.body ??
    JSON.stringify({ jsonrpc: '2.0', id: options.id ?? 1, method, params: { ...params, _meta: modernMeta() } });
  const named = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : undefined;
  const name: Record<string, string> = named === undefined ? {} : { 'mcp-name': named };
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      ...name,
      ...options.headers,
    },
    body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Parses a JSON or single-message SSE response body into its JSON-RPC message(s). */
export async function messagesOf(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  }
  return text ? [JSON.parse(text) as Record<string, unknown>] : [];
}
