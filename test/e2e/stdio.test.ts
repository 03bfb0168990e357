import { spawn } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { modernStdioClient, v1StdioClient } from '../helpers/clients.js';
import { MCPD_BIN } from '../helpers/process.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/** Touches a file until `received` resolves: the watcher needs a moment to start, and we cannot see when. */
async function touchUntil(file: string, received: Promise<unknown>, timeoutMs = 10_000): Promise<void> {
  let done = false;
  void received.then(() => {
    done = true;
  });
  await until(
    async () => {
      if (done) return true;
      await appendFile(file, `change ${Date.now()}\n`);
      return false;
    },
    // One touch per 250 ms: enough for the watcher's debounce to settle between two.
    { what: `an update for ${file}`, timeoutMs, intervalMs: 250 },
  );
  await received;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
  ]);
}

describe('stdio', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  beforeAll(async () => {
    demo = await demoCopy();
  });
  afterAll(async () => demo?.cleanup());

  it('writes only protocol frames to stdout; logs and audit go to stderr; exits 0 when stdin closes', async () => {
    const child = spawn(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config], { stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const send = (message: unknown) => child.stdin.write(`${JSON.stringify(message)}\n`);
    send({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-stdio', version: '1' } },
    });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    child.stdin.write('{ this is not json\n');
    send({ jsonrpc: '2.0', not: 'a request' });
    send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'read_file', arguments: { path: '.env' } } });
    send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'list_roots', arguments: {} } });
    await until(() => stdout.includes('"id":4'), { what: 'the answer to request 4', describe: () => stdout });
    child.stdin.end();
    expect(await withTimeout(exited, 10_000, 'exit')).toBe(0);

    const lines = stdout.split('\n').filter((line) => line.length > 0);
    const messages = lines.map(
      (line) => JSON.parse(line) as { jsonrpc: string; id?: number; result?: unknown; error?: { code: number } },
    );
    for (const message of messages) expect(message.jsonrpc).toBe('2.0');
    const byId = new Map(messages.filter((m) => m.id !== undefined).map((m) => [m.id, m]));
    expect(byId.get(1)?.result).toMatchObject({ protocolVersion: '2025-11-25', serverInfo: { name: 'mcpd' } });
    expect(byId.get(2)?.result).toMatchObject({
      tools: expect.arrayContaining([expect.objectContaining({ name: 'grep' })]),
    });
    expect(JSON.stringify(byId.get(2)?.result).match(/"inputSchema"/g)).toHaveLength(17);
    expect(byId.get(3)?.result).toMatchObject({ isError: true });
    expect(byId.get(4)?.result).toMatchObject({ structuredContent: { roots: expect.any(Array) } });
    expect(stdout).not.toContain('demo-password');
    const errors = messages.filter((m) => m.id === null).map((m) => m.error?.code);
    expect(errors).toEqual([-32700, -32600]);

    const stderrRecords = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const denial = stderrRecords.find((r) => r.decision === 'deny');
    expect(denial).toMatchObject({ transport: 'stdio', client: 'raw-stdio', tool: 'read_file', rule: 'exclude:.env' });
    expect(stderrRecords.some((r) => r.msg === 'serving stdio')).toBe(true);
  });

  it('2025-era resources/subscribe delivers updates for subscribed, readable files only', async () => {
    const client = await v1StdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
    const notes = `file://${demo.project}/workspace/notes.md`;
    // Changed last, as a marker: see below.
    const marker = `file://${demo.project}/docs/getting-started.md`;
    let markerUpdated = false;
    const updates: string[] = [];
    let resolveUpdate!: () => void;
    const firstUpdate = new Promise<void>((resolve) => {
      resolveUpdate = resolve;
    });
    const { ResourceUpdatedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      if (notification.params.uri === marker) {
        markerUpdated = true;
        return;
      }
      updates.push(notification.params.uri);
      resolveUpdate();
    });
    await client.subscribeResource({ uri: notes });
    await client.subscribeResource({ uri: marker });
    await expect(client.subscribeResource({ uri: `file://${demo.project}/.env` })).rejects.toThrow(
      /not found or not permitted/,
    );
    await touchUntil(join(demo.project, 'workspace/notes.md'), firstUpdate);
    expect(updates[0]).toBe(notes);
    // An unsubscribed file changing sends nothing for it.
    await appendFile(join(demo.project, 'README.md'), 'x\n');
    await appendFile(join(demo.project, '.env'), 'x\n');
    // Then a subscribed file: an update for either of the others would come before its update, as
    // they changed first and the messages on stdout arrive in order.
    await appendFile(join(demo.project, 'docs/getting-started.md'), 'x\n');
    await until(() => markerUpdated, {
      what: 'the update of the marker file',
      describe: () => JSON.stringify(updates),
    });
    expect(updates.every((uri) => uri === notes)).toBe(true);
    await client.close();
  });

  it('2026-07-28 subscriptions/listen delivers updates over stdio', async () => {
    const client = await modernStdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
    const config = `file://${demo.project}/config.yaml`;
    let resolveUpdate!: (uri: string) => void;
    const update = new Promise<string>((resolve) => {
      resolveUpdate = resolve;
    });
    client.setNotificationHandler('notifications/resources/updated', (notification) =>
      resolveUpdate(notification.params.uri),
    );
    const subscription = await client.listen({ resourceSubscriptions: [config] });
    expect(subscription.honoredFilter.resourceSubscriptions).toEqual([config]);
    await touchUntil(join(demo.project, 'config.yaml'), update);
    expect(await update).toBe(config);
    await subscription.close();
    await client.close();
  });

  it('stops a streaming call on notifications/cancelled and audits it as cancelled', async () => {
    const auditFile = join(demo.dir, 'stdio-cancel.log');
    const big = join(demo.project, 'workspace/big.csv');
    await appendFile(big, `${'1,2,3,4,5,6,7,8\n'.repeat(2_000_000)}`);
    const client = await v1StdioClient(process.execPath, [
      MCPD_BIN,
      'stdio',
      '--config',
      demo.config,
      '--audit-file',
      auditFile,
    ]);
    const controller = new AbortController();
    let seen = 0;
    const call = client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 4096 } },
      undefined,
      {
        signal: controller.signal,
        onprogress: () => {
          seen += 1;
          if (seen === 2) controller.abort('enough');
        },
      },
    );
    await expect(call).rejects.toThrow();
    const [record] = await waitForAudit(
      auditFile,
      (r) => r.tool === 'process_large_dataset' && r.outcome !== 'ok',
      1,
      10_000,
    );
    expect(record).toMatchObject({ transport: 'stdio', outcome: 'cancelled', error: 'CANCELLED' });
    expect(record?.durationMs).toBeLessThan(5000);
    await client.close();
  });
});
