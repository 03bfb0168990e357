import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the model behind Claude Code: the Anthropic Messages API on loopback, answering
 * from a script of tool calls instead of thinking. Claude Code, the real client, runs the MCP side;
 * this only decides which tool to call next and keeps what Claude Code sent back as each tool's
 * result, which is exactly what a model would be given to read.
 */

export interface ScriptedCall {
  /** The tool as Claude Code names it, e.g. `mcp__mcpd__read_file` or `ListMcpResourcesTool`. */
  readonly tool: string;
  readonly input: Record<string, unknown>;
}

export interface ToolResultBlock {
  readonly type: string;
  readonly text?: string;
}

export interface ModelTranscript {
  /** The tool names Claude Code offered the model on the first request. */
  readonly offeredTools: string[];
  /** What the model was given for each scripted call, in order. */
  readonly results: { call: ScriptedCall; content: ToolResultBlock[]; isError: boolean }[];
}

interface MessagesRequest {
  model: string;
  stream?: boolean;
  tools?: { name: string }[];
  messages: {
    role: string;
    content: string | { type: string; tool_use_id?: string; content?: unknown; is_error?: boolean }[];
  }[];
}

async function bodyOf(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

/** Starts the fake model for one session with `script`; `transcript` fills in as Claude Code talks to it. */
export async function startFakeModel(script: readonly ScriptedCall[]): Promise<{
  url: string;
  transcript: ModelTranscript;
  close(): Promise<void>;
}> {
  const transcript: ModelTranscript = { offeredTools: [], results: [] };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await bodyOf(req);
      if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      const request = JSON.parse(text) as MessagesRequest;
      // Only the conversation that carries the tools is the session; side requests (titles) get text.
      const tools = request.tools?.map((tool) => tool.name) ?? [];
      const isSession = tools.some((name) => name.startsWith('mcp__'));
      if (isSession && transcript.offeredTools.length === 0) transcript.offeredTools.push(...tools);
      const answered = isSession ? collectResults(request, script, transcript) : script.length;
      const next = isSession ? script[answered] : undefined;
      const content = next
        ? [{ type: 'tool_use', id: toolUseId(answered), name: next.tool, input: next.input }]
        : [{ type: 'text', text: 'done' }];
      reply(res, request, content, next ? 'tool_use' : 'end_turn');
    })().catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    transcript,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const toolUseId = (index: number) => `toolu_mcpd_${String(index).padStart(2, '0')}`;

/** Records the tool results the request carries; returns how many scripted calls are answered. */
function collectResults(
  request: MessagesRequest,
  script: readonly ScriptedCall[],
  transcript: ModelTranscript,
): number {
  let answered = 0;
  for (const message of request.messages) {
    if (typeof message.content === 'string') continue;
    for (const block of message.content) {
      if (block.type !== 'tool_result') continue;
      const index = script.findIndex((_call, i) => toolUseId(i) === block.tool_use_id);
      const call = script[index];
      if (!call) continue;
      answered = Math.max(answered, index + 1);
      if (transcript.results.some((result) => result.call === call)) continue;
      const content =
        typeof block.content === 'string'
          ? [{ type: 'text', text: block.content }]
          : (block.content as ToolResultBlock[]);
      transcript.results.push({ call, content, isError: block.is_error === true });
    }
  }
  return answered;
}

/** A Messages API answer, streamed as server-sent events when asked, as the SDK expects. */
function reply(
  res: import('node:http').ServerResponse,
  request: MessagesRequest,
  content: Record<string, unknown>[],
  stopReason: string,
): void {
  const message = {
    id: `msg_fake_${Date.now()}`,
    type: 'message',
    role: 'assistant',
    model: request.model,
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
  };
  if (!request.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(message));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const event = (type: string, data: Record<string, unknown>) =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  event('message_start', { message: { ...message, content: [], stop_reason: null } });
  content.forEach((block, index) => {
    if (block.type === 'text') {
      event('content_block_start', { index, content_block: { type: 'text', text: '' } });
      event('content_block_delta', { index, delta: { type: 'text_delta', text: block.text } });
    } else {
      event('content_block_start', { index, content_block: { ...block, input: {} } });
      event('content_block_delta', {
        index,
        delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
      });
    }
    event('content_block_stop', { index });
  });
  event('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 1 } });
  event('message_stop', {});
  res.end();
}
