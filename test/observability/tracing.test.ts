import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit, waitForAudit } from '../helpers/audit.js';
import { attribute, type OtlpSpan, type SpanReceiver, startSpanReceiver } from '../helpers/otlp.js';
import { freePort } from '../helpers/ports.js';
import { serveMcpd } from '../helpers/process.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('OpenTelemetry tracing over OTLP/HTTP', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let receiver: SpanReceiver;
  let server: TestServer;
  const metaTrace = { traceId: hex(16), spanId: hex(8) };
  const headerTrace = { traceId: hex(16), spanId: hex(8) };
  const headerOnly = { traceId: hex(16), spanId: hex(8) };

  beforeAll(async () => {
    demo = await demoCopy();
    receiver = await startSpanReceiver();
    server = await startServer(
      await demo.configWith('traced.yaml', `tracing: { enabled: true, endpoint: "${receiver.url}" }\n`),
    );

    const call = (
      name: string,
      args: Record<string, unknown>,
      meta: Record<string, unknown>,
      headers: Record<string, string>,
    ) => postModern(server.url, 'tools/call', { name, arguments: args }, { headers, client: 'traced', meta });
    // _meta carries one trace context and the HTTP header another: _meta wins, the header is linked.
    const first = await call(
      'read_file',
      { path: 'README.md' },
      { traceparent: `00-${metaTrace.traceId}-${metaTrace.spanId}-01` },
      { traceparent: `00-${headerTrace.traceId}-${headerTrace.spanId}-01` },
    );
    expect(first.status).toBe(200);
    await messagesOf(first);
    // Only the header: it is the parent.
    const second = await call(
      'read_file',
      { path: '.env' },
      {},
      { traceparent: `00-${headerOnly.traceId}-${headerOnly.spanId}-01` },
    );
    await messagesOf(second);
    // Shutdown flushes the batch.
    await server.close();
  });
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
    await demo?.cleanup();
  });

  it('makes one SERVER span per request, named and attributed as the MCP conventions say, parented from _meta', () => {
    const span = receiver.spans.find((s) => s.traceId === metaTrace.traceId && s.kind === 2);
    expect(span, JSON.stringify(receiver.spans.map((s) => [s.name, s.traceId, s.kind]))).toBeDefined();
    const server = span as OtlpSpan;
    expect(server.name).toBe('tools/call read_file');
    expect(server.parentSpanId).toBe(metaTrace.spanId);
    expect(attribute(server, 'mcp.method.name')).toBe('tools/call');
    expect(attribute(server, 'gen_ai.tool.name')).toBe('read_file');
    expect(attribute(server, 'mcp.protocol.version')).toBe('2026-07-28');
    expect(attribute(server, 'jsonrpc.request.id')).toBe('1');
    expect(attribute(server, 'client.address')).toBe('127.0.0.1');
    expect(attribute(server, 'error.type')).toBeUndefined();
    expect(server.links).toEqual([
      expect.objectContaining({ traceId: headerTrace.traceId, spanId: headerTrace.spanId }),
    ]);
  });

  it('has child spans for the policy decision and the file operation', () => {
    const server = receiver.spans.find((s) => s.traceId === metaTrace.traceId && s.kind === 2) as OtlpSpan;
    const children = receiver.spans.filter((s) => s.parentSpanId === server.spanId);
    expect(children.map((s) => s.name).sort()).toEqual(['mcpd.fs read', 'mcpd.policy.decide']);
    const decision = children.find((s) => s.name === 'mcpd.policy.decide') as OtlpSpan;
    expect(attribute(decision, 'mcpd.decision')).toBe('allow');
    expect(attribute(decision, 'mcpd.rule')).toBe('read:*.md');
    const read = children.find((s) => s.name === 'mcpd.fs read') as OtlpSpan;
    expect(attribute(read, 'mcpd.path')).toBe('README.md');
    expect(Number(attribute(read, 'mcpd.bytes'))).toBeGreaterThan(0);
  });

  it('falls back to the HTTP traceparent header, and marks a failed call with error.type', () => {
    const server = receiver.spans.find((s) => s.traceId === headerOnly.traceId && s.kind === 2) as OtlpSpan;
    expect(server).toBeDefined();
    expect(server.parentSpanId).toBe(headerOnly.spanId);
    expect(attribute(server, 'error.type')).toBe('tool_error');
    expect(server.status?.code).toBe(2);
    const decision = receiver.spans.find(
      (s) => s.parentSpanId === server.spanId && s.name === 'mcpd.policy.decide',
    ) as OtlpSpan;
    expect(attribute(decision, 'mcpd.decision')).toBe('deny');
  });

  it('puts the trace id in the audit record', async () => {
    const records = await waitForAudit(server.auditFile, (r) => r.client === 'traced', 2);
    expect(records.map((r) => r.traceId)).toEqual([metaTrace.traceId, headerOnly.traceId]);
  });
});

describe('tracing with the collector down', () => {
  it('loses the last spans, never the clean exit: SIGTERM still drains, closes the audit log and exits 0', async () => {
    const demo = await demoCopy();
    try {
      // A port nothing listens on: every export is refused.
      const config = await demo.configWith(
        'traced-nowhere.yaml',
        `tracing: { enabled: true, endpoint: "http://127.0.0.1:${await freePort()}/v1/traces" }\n`,
      );
      const auditFile = join(demo.dir, 'audit.log');
      const serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
      const response = await postModern(serving.url, 'tools/call', {
        name: 'read_file',
        arguments: { path: 'README.md' },
      });
      expect(response.status).toBe(200);
      await messagesOf(response);
      expect(await serving.stop('SIGTERM')).toBe(0);
      expect(serving.stderr()).toContain('"msg":"stopped"');
      expect(serving.stderr()).toContain('could not export the last spans');
      expect((await readAudit(auditFile)).map((r) => r.tool)).toEqual(['read_file']);
    } finally {
      await demo.cleanup();
    }
  });
});
