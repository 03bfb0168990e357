import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client as V2Client, StreamableHTTPClientTransport as V2Http } from '@modelcontextprotocol/client';
import { StdioClientTransport as V2Stdio } from '@modelcontextprotocol/client/stdio';
import { Client as V1Latest } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as V1LatestStdio } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as V1LatestHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as V110 } from 'sdk-v1-10/client/index.js';
import { StdioClientTransport as V110Stdio } from 'sdk-v1-10/client/stdio.js';
import { StreamableHTTPClientTransport as V110Http } from 'sdk-v1-10/client/streamableHttp.js';
import { Client as V113 } from 'sdk-v1-13/client/index.js';
import { StdioClientTransport as V113Stdio } from 'sdk-v1-13/client/stdio.js';
import { StreamableHTTPClientTransport as V113Http } from 'sdk-v1-13/client/streamableHttp.js';
import { REPO } from '../helpers/workspace.js';
import { type ModelTranscript, type ScriptedCall, startFakeModel } from './fakeModel.js';

/** Where a driver reaches mcpd: a URL (HTTP) or a command that starts `mcpd stdio`. */
export type Target =
  | { readonly kind: 'http'; readonly url: string }
  | { readonly kind: 'stdio'; readonly command: string; readonly args: string[] };

export interface ToolAnswer {
  readonly content: { type: string; text?: string }[];
  readonly structuredContent?: unknown;
  readonly isError?: boolean;
}

export interface CallOptions {
  readonly onprogress?: (progress: { progress: number; total?: number }) => void;
  readonly signal?: AbortSignal;
}

/** What every client in the matrix can be asked to do, whatever its library. */
export interface MatrixClient {
  /** The protocol revision the session runs on, as the client sees it (null when it does not say). */
  protocol(): string | null;
  /**
   * Progress notifications the client library read but did not deliver because the response it
   * read in the same chunk retired their token first (typescript-sdk#2580: the SDK dispatches
   * notifications a microtask later than responses, and a server cannot avoid it).
   */
  lateProgress?(): number;
  listTools(): Promise<string[]>;
  callTool(name: string, args: Record<string, unknown>, options?: CallOptions): Promise<ToolAnswer>;
  listResources(): Promise<string[]>;
  close(): Promise<void>;
}

/** A client library at a pinned version, connected by its own transports. */
export interface Driver {
  readonly label: string;
  /** The package and version, read from the installed package.json. */
  readonly version: string;
  /** Whether it can stream progress and cancel (the Inspector CLI runs one method per process). */
  readonly streams: boolean;
  readonly transports: readonly ('http' | 'stdio')[];
  connect(target: Target, env: Record<string, string>): Promise<MatrixClient>;
}

/** The installed version of a package, from its package.json (some do not export it, so by path). */
const versionOf = (pkg: string) =>
  (JSON.parse(readFileSync(join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

/** Only what the child needs: a stdio client must not leak this process's environment into it. */
function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

/** The SDK reports a progress notification dropped by that race through onerror, with this text. */
const LATE_PROGRESS = /progress notification for an unknown token/;

type V1Like = {
  onerror?: (error: Error) => void;
  connect(transport: unknown): Promise<void>;
  listTools(): Promise<{ tools: { name: string }[] }>;
  callTool(params: unknown, schema?: unknown, options?: unknown): Promise<unknown>;
  listResources(): Promise<{ resources: { uri: string }[] }>;
  close(): Promise<void>;
};

/** The SDK v1 family: Client(name, version), callTool(params, schema, options). */
function v1Driver(
  label: string,
  pkg: string,
  make: {
    client: new (info: { name: string; version: string }) => unknown;
    http: new (url: URL) => unknown;
    stdio: new (params: { command: string; args: string[]; env: Record<string, string>; stderr: 'pipe' }) => unknown;
  },
): Driver {
  return {
    label,
    version: `${pkg.replace(/^sdk-v1-\d+$/, '@modelcontextprotocol/sdk')} ${versionOf(pkg)}`,
    streams: true,
    transports: ['http', 'stdio'],
    async connect(target, env) {
      const client = new make.client({ name: `matrix ${label}`, version: versionOf(pkg) }) as V1Like;
      let late = 0;
      client.onerror = (error) => {
        if (LATE_PROGRESS.test(error.message)) late += 1;
      };
      const transport =
        target.kind === 'http'
          ? new make.http(new URL(target.url))
          : new make.stdio({ command: target.command, args: target.args, env: childEnv(env), stderr: 'pipe' });
      // The version the server agreed on comes back in the initialize result.
      let agreed: string | null = null;
      const watched = transport as { onmessage?: (message: unknown) => void };
      const connected = client.connect(transport);
      const forward = watched.onmessage;
      watched.onmessage = (message) => {
        const version = (message as { result?: { protocolVersion?: unknown } }).result?.protocolVersion;
        if (agreed === null && typeof version === 'string') agreed = version;
        forward?.call(transport, message);
      };
      await connected;
      return {
        protocol: () => agreed,
        lateProgress: () => late,
        listTools: async () => (await client.listTools()).tools.map((tool) => tool.name),
        callTool: async (name, args, options) =>
          (await client.callTool({ name, arguments: args }, undefined, {
            ...options,
            ...(options?.onprogress ? { resetTimeoutOnProgress: true } : {}),
          })) as ToolAnswer,
        listResources: async () => (await client.listResources()).resources.map((resource) => resource.uri),
        close: () => client.close(),
      };
    },
  };
}

/** The SDK v2 client, pinned to 2026-07-28 or negotiating ('auto'). */
function v2Driver(label: string, mode: 'auto' | { pin: string }): Driver {
  return {
    label,
    version: `@modelcontextprotocol/client ${versionOf('@modelcontextprotocol/client')}`,
    streams: true,
    transports: ['http', 'stdio'],
    async connect(target, env) {
      const client = new V2Client({ name: `matrix ${label}`, version: '2' }, { versionNegotiation: { mode } });
      let late = 0;
      client.onerror = (error) => {
        if (LATE_PROGRESS.test(error.message)) late += 1;
      };
      await client.connect(
        target.kind === 'http'
          ? new V2Http(new URL(target.url))
          : new V2Stdio({ command: target.command, args: target.args, env: childEnv(env), stderr: 'pipe' }),
      );
      return {
        protocol: () => client.getNegotiatedProtocolVersion() ?? null,
        lateProgress: () => late,
        listTools: async () => (await client.listTools()).tools.map((tool) => tool.name),
        callTool: async (name, args, options) =>
          (await client.callTool(
            { name, arguments: args },
            { ...options, ...(options?.onprogress ? { resetTimeoutOnProgress: true } : {}) },
          )) as ToolAnswer,
        listResources: async () => (await client.listResources()).resources.map((resource) => resource.uri),
        close: () => client.close(),
      };
    },
  };
}

/**
 * mcp-remote, as Claude Desktop runs it: a stdio server that bridges to mcpd's HTTP endpoint.
 * The client on its stdio side is the SDK v1 (what Claude Desktop's own client speaks).
 */
function mcpRemoteDriver(): Driver {
  const bridge = v1Driver('mcp-remote', '@modelcontextprotocol/sdk', {
    client: V1Latest,
    http: V1LatestHttp,
    stdio: V1LatestStdio,
  });
  return {
    label: 'mcp-remote (stdio bridge, as Claude Desktop runs it)',
    version: `mcp-remote ${versionOf('mcp-remote')}`,
    streams: true,
    transports: ['http'],
    connect(target, env) {
      if (target.kind !== 'http') throw new Error('mcp-remote bridges to HTTP only');
      const proxy = join(REPO, 'node_modules/mcp-remote/dist/proxy.js');
      return bridge.connect({ kind: 'stdio', command: process.execPath, args: [proxy, target.url] }, env);
    },
  };
}

/** Runs the Inspector CLI once: one connection, one method, its JSON answer on stdout. */
function inspectorRun(target: Target, methodArgs: string[], env: Record<string, string>): Promise<unknown> {
  const cli = join(REPO, 'node_modules/@modelcontextprotocol/inspector-cli/build/cli.js');
  // Variadic options (--tool-arg) come first; the server command goes after "--", so that its own
  // flags (--config) are not taken for the Inspector's.
  const args =
    target.kind === 'http'
      ? [cli, '--cli', target.url, ...methodArgs]
      : [cli, '--cli', ...methodArgs, '--', target.command, ...target.args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`inspector ${methodArgs.join(' ')} exited ${code}: ${stderr || stdout}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`inspector printed no JSON: ${stdout.slice(0, 300)}`));
      }
    });
  });
}

/** The MCP Inspector's CLI mode (`npx @modelcontextprotocol/inspector --cli`), which runs on Node 20. */
function inspectorDriver(): Driver {
  return {
    label: 'MCP Inspector CLI (--cli)',
    version: `@modelcontextprotocol/inspector-cli ${versionOf('@modelcontextprotocol/inspector-cli')}`,
    streams: false,
    transports: ['http', 'stdio'],
    async connect(target, env) {
      return {
        protocol: () => null,
        listTools: async () =>
          ((await inspectorRun(target, ['--method', 'tools/list'], env)) as { tools: { name: string }[] }).tools.map(
            (tool) => tool.name,
          ),
        callTool: async (name, args) =>
          (await inspectorRun(
            target,
            [
              '--tool-name',
              name,
              ...(Object.keys(args).length > 0
                ? ['--tool-arg', ...Object.entries(args).map(([key, value]) => `${key}=${String(value)}`)]
                : []),
              '--method',
              'tools/call',
            ],
            env,
          )) as ToolAnswer,
        listResources: async () =>
          (
            (await inspectorRun(target, ['--method', 'resources/list'], env)) as { resources: { uri: string }[] }
          ).resources.map((resource) => resource.uri),
        close: async () => {},
      };
    },
  };
}

/** The Claude Code binary for this platform (a native executable in its own npm package). */
function claudeCodeBinary(): string {
  return join(REPO, 'node_modules', `@anthropic-ai/claude-code-${process.platform}-${process.arch}`, 'claude');
}

const MCPD_TOOL = 'mcp__mcpd__';

/** Runs one Claude Code session in print mode with mcpd configured, against the scripted fake model. */
async function runClaudeCode(target: Target, home: string, script: ScriptedCall[]): Promise<ModelTranscript> {
  const server =
    target.kind === 'http'
      ? { type: 'http', url: target.url }
      : { type: 'stdio', command: target.command, args: target.args };
  const configFile = join(home, `claude-mcp-${target.kind}.json`);
  writeFileSync(configFile, JSON.stringify({ mcpServers: { mcpd: server } }));
  const model = await startFakeModel(script);
  try {
    const args = [
      '-p',
      'Use the mcpd tools.',
      '--model',
      'claude-sonnet-4-5',
      '--mcp-config',
      configFile,
      '--strict-mcp-config',
      '--allowedTools',
      script.map((call) => call.tool).join(','),
    ];
    const env = childEnv({
      HOME: home,
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: 'sk-fake-model-on-loopback',
      // Nothing but the fake model: no telemetry, no update checks, no other hosts.
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      // Print mode connects MCP servers in the background and snapshots the tools when the first
      // request goes out: on a busy machine a server still starting is left out for the whole
      // session (anthropics/claude-code#74926). Blocking connection is Claude Code's own switch
      // for headless runs, and what the docs recommend for scripted use.
      MCP_CONNECTION_NONBLOCKING: 'false',
      MCP_TIMEOUT: '60000',
    });
    await new Promise<void>((resolve, reject) => {
      const child = spawn(claudeCodeBinary(), args, { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk;
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk;
      });
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`claude exited ${code}: ${output.slice(-2000)}`)),
      );
    });
    return model.transcript;
  } finally {
    await model.close();
  }
}

/**
 * Claude Code, the real CLI, in print mode. The model behind it is scripted to call list_roots,
 * read_file and the resource listing; what is checked is what Claude Code gave the model to read.
 */
function claudeCodeDriver(): Driver {
  return {
    label: 'Claude Code (print mode, scripted model)',
    version: `@anthropic-ai/claude-code ${versionOf('@anthropic-ai/claude-code')}`,
    streams: false,
    transports: ['http', 'stdio'],
    async connect(target, env) {
      const home = env.HOME;
      if (home === undefined) throw new Error('Claude Code needs a HOME of its own');
      const script: ScriptedCall[] = [
        { tool: `${MCPD_TOOL}list_roots`, input: {} },
        { tool: `${MCPD_TOOL}read_file`, input: { path: 'README.md' } },
        { tool: 'ListMcpResourcesTool', input: { server: 'mcpd' } },
      ];
      const transcript = await runClaudeCode(target, home, script);
      const resultOf = (tool: string, input: Record<string, unknown>) => {
        const found = transcript.results.find(
          (result) => result.call.tool === tool && JSON.stringify(result.call.input) === JSON.stringify(input),
        );
        if (!found) throw new Error(`the model was never given a result for ${tool} ${JSON.stringify(input)}`);
        return found;
      };
      return {
        protocol: () => null,
        listTools: async () =>
          transcript.offeredTools
            .filter((name) => name.startsWith(MCPD_TOOL))
            .map((name) => name.slice(MCPD_TOOL.length)),
        callTool: async (name, args) => {
          const { content, isError } = resultOf(`${MCPD_TOOL}${name}`, args);
          return { content, isError };
        },
        listResources: async () => {
          const { content } = resultOf('ListMcpResourcesTool', { server: 'mcpd' });
          const text = content.map((block) => block.text ?? '').join('\n');
          return [...text.matchAll(/"uri":\s*"([^"]+)"/g)].map((match) => match[1] as string);
        },
        close: async () => {},
      };
    },
  };
}

/** Every client in the matrix, oldest first. */
export const DRIVERS: readonly Driver[] = [
  v1Driver('SDK v1 1.10', 'sdk-v1-10', { client: V110, http: V110Http, stdio: V110Stdio }),
  v1Driver('SDK v1 1.13', 'sdk-v1-13', { client: V113, http: V113Http, stdio: V113Stdio }),
  v1Driver('SDK v1 latest', '@modelcontextprotocol/sdk', {
    client: V1Latest,
    http: V1LatestHttp,
    stdio: V1LatestStdio,
  }),
  v2Driver('SDK v2, pinned 2026-07-28', { pin: '2026-07-28' }),
  v2Driver('SDK v2, auto', 'auto'),
  mcpRemoteDriver(),
  inspectorDriver(),
  claudeCodeDriver(),
];
