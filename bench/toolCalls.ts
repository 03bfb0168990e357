/** A tools/call over HTTP as the benchmarks send it, in either era: the headers and the body. */

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'mcpd-bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

export function modernToolCall(
  tool: string,
  args: Record<string, unknown>,
  token?: string,
): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': tool,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: tool, arguments: args, _meta: META },
    }),
  };
}

/** A 2025-11-25 client after its initialize: stateless, the version in a header, no envelope. */
export function legacyToolCall(
  tool: string,
  args: Record<string, unknown>,
  token?: string,
): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } }),
  };
}
