/**
 * A lean MCP client over stdio: newline-delimited JSON-RPC to a child process, one request at a
 * time. No SDK in between, so what is timed is the server and the pipe: a call's time runs from
 * writing the request line to receiving the last byte of the answer line, before the answer is
 * parsed (parsing 100 MB of JSON is the client's cost, not the server's).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface ToolAnswer {
  /** Milliseconds from writing the request to the end of the answer line. */
  readonly ms: number;
  /** Bytes of the answer line. */
  readonly lineBytes: number;
  readonly result: {
    content?: { type: string; text?: string }[];
    structuredContent?: Record<string, unknown>;
    isError?: boolean;
  };
}

interface Pending {
  readonly id: number;
  readonly started: number;
  readonly resolve: (answer: { ms: number; line: Buffer }) => void;
  readonly reject: (error: Error) => void;
}

const NEWLINE = 0x0a;

export class StdioClient {
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private pieces: Buffer[] = [];
  private pending: Pending | undefined;
  private nextId = 1;
  private stderr = '';

  private constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
  ) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdout?.on('data', (chunk: Buffer) => this.receive(chunk));
    // Kept short: only for the message of a failure. Draining it keeps a chatty server from blocking.
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = `${this.stderr}${chunk}`.slice(-4000);
    });
    this.child.once('exit', (code) => {
      this.pending?.reject(new Error(`${this.name} exited with ${code} during a call: ${this.stderr}`));
      this.pending = undefined;
    });
  }

  /** Spawns the server and completes the 2025-11-25 handshake. */
  static async connect(name: string, command: string, args: readonly string[]): Promise<StdioClient> {
    const client = new StdioClient(name, command, args);
    await client.request('initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'mcpd-bench', version: '1' },
    });
    client.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return client;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** One JSON-RPC request; rejects on a JSON-RPC error. */
  async request(
    method: string,
    params: Record<string, unknown>,
  ): Promise<{ ms: number; line: Buffer; result: unknown }> {
    if (this.pending) throw new Error(`${this.name}: one request at a time`);
    const id = this.nextId++;
    const answer = await new Promise<{ ms: number; line: Buffer }>((resolve, reject) => {
      this.pending = { id, started: performance.now(), resolve, reject };
      this.send({ jsonrpc: '2.0', id, method, params });
    });
    const message = JSON.parse(answer.line.toString('utf8')) as { result?: unknown; error?: { message: string } };
    if (message.error) throw new Error(`${this.name} ${method}: ${JSON.stringify(message.error).slice(0, 500)}`);
    return { ...answer, result: message.result };
  }

  /** A tools/call; rejects when the tool answers isError, so nothing failed is ever timed. */
  async call(tool: string, args: Record<string, unknown>): Promise<ToolAnswer> {
    const { ms, line, result } = await this.request('tools/call', { name: tool, arguments: args });
    const answer = result as ToolAnswer['result'];
    if (answer.isError) {
      throw new Error(`${this.name} ${tool} failed: ${JSON.stringify(answer.content ?? []).slice(0, 500)}`);
    }
    return { ms, lineBytes: line.length, result: answer };
  }

  /** Closes stdin (both servers exit on end of input) and waits; a server that lingers is killed. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  private send(message: object): void {
    this.child.stdin?.write(`${JSON.stringify(message)}\n`);
  }

  /**
   * Splits stdout into lines without re-scanning what came before: a 100 MB answer arrives in
   * thousands of chunks, and only each new chunk is searched for the newline.
   */
  private receive(chunk: Buffer): void {
    let start = 0;
    let end = chunk.indexOf(NEWLINE, start);
    while (end !== -1) {
      const at = performance.now();
      this.pieces.push(chunk.subarray(start, end));
      const line = this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces);
      this.pieces = [];
      this.deliver(line, at);
      start = end + 1;
      end = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) this.pieces.push(chunk.subarray(start));
  }

  /** Answers go to the waiting request; notifications (and anything else without its id) are dropped. */
  private deliver(line: Buffer, at: number): void {
    const pending = this.pending;
    if (!pending || line.length === 0) return;
    // A small line is parsed to match its id (after the time was taken); a large one can only be
    // the answer, since notifications are small, and is left for the caller to parse once.
    if (line.length < 65536) {
      const message = JSON.parse(line.toString('utf8')) as { id?: unknown };
      if (message.id !== pending.id) return;
    }
    this.pending = undefined;
    pending.resolve({ ms: at - pending.started, line });
  }
}
