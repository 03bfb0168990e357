import { request as httpRequest } from 'node:http';

/** Raw Streamable HTTP requests, for what a well-behaved SDK client would never send. */

const MODERN_VERSION = '2026-07-28';

function modernMeta(name = 'raw-test') {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientInfo': { name, version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
  };
}

export interface ModernRequestOptions {
  readonly id?: number | string;
  /** The clientInfo name in the envelope (what the audit record calls the client). */
  readonly client?: string;
  /** More `_meta` fields: a progressToken, a traceparent. */
  readonly meta?: Record<string, unknown>;
}

/**
 * The standard headers and the JSON-RPC body of a 2026-07-28 request with its per-request
 * envelope, for any HTTP client (postModern's fetch, node:https with a CA, a raw socket).
 */
export function modernRequest(
  method: string,
  params: Record<string, unknown> = {},
  options: ModernRequestOptions = {},
): { headers: Record<string, string>; body: string } {
  const named = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : undefined;
  return {
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      ...(named === undefined ? {} : { 'mcp-name': named }),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: options.id ?? 1,
      method,
      params: { ...params, _meta: { ...modernMeta(options.client), ...options.meta } },
    }),
  };
}

export interface RawOptions extends ModernRequestOptions {
  /** Added to the standard headers, or replacing them. */
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

/** POSTs a 2026-07-28 request with the per-request envelope and the standard headers. */
export function postModern(
  url: string,
  method: string,
  params: Record<string, unknown> = {},
  options: RawOptions = {},
) {
  const request = modernRequest(method, params, options);
  return fetch(url, {
    method: 'POST',
    headers: { ...request.headers, ...options.headers },
    body: request.body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Parses a JSON or single-message SSE response body into its JSON-RPC message(s). */
/** A raw 2025-era POST (no _meta envelope, no Mcp-Method unless given), with whatever extra headers a test (or an attacker) adds. */
export function postLegacy(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-03-26',
      ...headers,
    },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

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

/** A request through node:http, which sends any Host header it is given (fetch will not). */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
