/** A tools/call over HTTP as the benchmarks send it, in either era: the headers and the body. */

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'mcpd-bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

type ToolCall = (
  tool: string,
  args: Record<string, unknown>,
  token?: string,
) => { headers: Record<string, string>; body: string };

/**
 * 2026-07-28: the method and the tool in headers too, the envelope in _meta. 2025-11-25: a client
 * after its initialize, stateless, the version in a header, no envelope.
 */
function toolCall(era: 'modern' | 'legacy'): ToolCall {
  const modern = era === 'modern';
  return (tool, args, token) => ({
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': modern ? '2026-07-28' : '2025-11-25',
      ...(modern ? { 'mcp-method': 'tools/call', 'mcp-name': tool } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: tool, arguments: args, ...(modern ? { _meta: META } : {}) },
    }),
  });
}

export const modernToolCall = toolCall('modern');
export const legacyToolCall = toolCall('legacy');
