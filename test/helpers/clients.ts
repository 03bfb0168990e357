import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as V1StdioTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** SDK v2 client pinned to 2026-07-28 (no fallback: a server that cannot do it fails the test). */
export async function modernHttpClient(url: string, name = 'test-v2'): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** SDK v2 client speaking the 2025 handshake (legacy era). */
export async function legacyV2HttpClient(url: string, name = 'test-v2-legacy'): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** The SDK v1 client (`@modelcontextprotocol/sdk`), 2025-11-25. */
export async function v1HttpClient(url: string, name = 'test-v1'): Promise<V1Client> {
  const client = new V1Client({ name, version: '1.0.0' });
  await client.connect(new V1HttpTransport(new URL(url)));
  return client;
}

export async function modernStdioClient(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<Client> {
  const client = new Client(
    { name: 'test-v2-stdio', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(new StdioClientTransport({ command, args, env: { ...inheritEnv(), ...env }, stderr: 'pipe' }));
  return client;
}

export async function v1StdioClient(command: string, args: string[], env?: Record<string, string>): Promise<V1Client> {
  const client = new V1Client({ name: 'test-v1-stdio', version: '1.0.0' });
  await client.connect(new V1StdioTransport({ command, args, env: { ...inheritEnv(), ...env }, stderr: 'pipe' }));
  return client;
}

function inheritEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/** The catalogue code mcpd puts on a tool result's `_meta` when the call failed (e.g. UNAVAILABLE). */
export function errorCode(result: { _meta?: Record<string, unknown> }): string | undefined {
  return (result._meta?.['dev.mcpd/error'] as { code?: string } | undefined)?.code;
}
