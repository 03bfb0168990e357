import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: { key: string; value: Record<string, unknown> }[];
  readonly links?: { traceId: string; spanId: string }[];
  readonly status?: { code?: number };
}

export interface SpanReceiver {
  /** The OTLP/HTTP traces endpoint, for `tracing.endpoint`. */
  readonly url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: OtlpSpan[];
  close(): Promise<void>;
}

/** An OTLP/HTTP (JSON) traces receiver on loopback, as a collector would be. */
export async function startSpanReceiver(): Promise<SpanReceiver> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
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
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Exporters in other processes keep their connections alive.
        server.closeAllConnections();
      }),
  };
}

/** The value of a span attribute, whatever its OTLP type (stringValue, intValue, ...). */
export function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}
