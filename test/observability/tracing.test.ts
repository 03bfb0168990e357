import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { freePort } from '../helpers/ports.js';
import { serveMcpd } from '../helpers/process.js';
import { messagesOf, modernMeta, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number };
}

/** An OTLP/HTTP (JSON) traces receiver on loopback, as a collector would be. */
async function startReceiver(): Promise<{ url: string; spans: OtlpSpan[]; close: () => Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk;
    });
    req.on('end', () => {
      const payload = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const resource of payload.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('OpenTelemetry tracing over OTLP/HTTP', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let server: TestServer;
  const metaTrace = { traceId: hex(16), spanId: hex(8) };
  const headerTrace = { traceId: hex(16), spanId: hex(8) };
  const headerOnly = { traceId: hex(16), spanId: hex(8) };

  beforeAll(async () => {
    demo = await demoCopy();
    receiver = await startReceiver();
    const config = join(demo.dir, 'traced.yaml');
    await writeFile(
      config,
      `${await readFile(demo.config, 'utf8')}\ntracing: { enabled: true, endpoint: "${receiver.url}" }\n`,
    );
    server = await startServer(config);

    const call = (
      name: string,
      args: Record<string, unknown>,
      meta: Record<string, unknown>,
      headers: Record<string, string>,
    ) =>
      postModern(
        server.url,
        'tools/call',
        { name, arguments: args },
        {
          headers,
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name, arguments: args, _meta: { ...modernMeta('traced'), ...meta } },
          }),
        },
      );
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
    const records = (await readAudit(server.auditFile)).filter((r) => r.client === 'traced');
    expect(records.map((r) => r.traceId)).toEqual([metaTrace.traceId, headerOnly.traceId]);
  });
});

describe('tracing with the collector down', () => {
  it('loses the last spans, never the clean exit: SIGTERM still drains, closes the audit log and exits 0', async () => {
    const demo = await demoCopy();
    try {
      const config = join(demo.dir, 'traced-nowhere.yaml');
      // A port nothing listens on: every export is refused.
      await writeFile(
        config,
        `${await readFile(demo.config, 'utf8')}\ntracing: { enabled: true, endpoint: "http://127.0.0.1:${await freePort()}/v1/traces" }\n`,
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
