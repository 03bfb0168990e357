import { startJsonReceiver } from './receiver.js';

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
  const receiver = await startJsonReceiver((body) => {
    const payload = body as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
    for (const resource of payload.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
    return 200;
  });
  return { url: `http://127.0.0.1:${receiver.port}/v1/traces`, spans, close: () => receiver.close() };
}

/** The value of a span attribute, whatever its OTLP type (stringValue, intValue, ...). */
export function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}

export interface OtlpLogRecord {
  readonly timeUnixNano: string;
  readonly severityNumber?: number;
  readonly severityText?: string;
  readonly eventName?: string;
  readonly body?: { stringValue?: string };
  readonly attributes: { key: string; value: Record<string, unknown> }[];
}

export interface LogReceiver {
  /** The OTLP/HTTP logs endpoint, for `audit.otlp.endpoint`. */
  readonly url: string;
  /** Every log record accepted so far, in arrival order, with its resource's attributes. */
  readonly records: { record: OtlpLogRecord; resource: Record<string, unknown> }[];
  /** Export requests that arrived while down (answered 503), none accepted. */
  readonly refused: number;
  /** The headers of the last export request. */
  readonly headers: Record<string, string | string[] | undefined>;
  /** Answers 503 (a collector shedding load or restarting) until up(). */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/** An OTLP/HTTP (JSON) logs receiver on loopback, as a collector would be, that can be taken down. */
export async function startLogReceiver(): Promise<LogReceiver> {
  const records: LogReceiver['records'] = [];
  let accepting = true;
  let refused = 0;
  let headers: Record<string, string | string[] | undefined> = {};
  const receiver = await startJsonReceiver((body, requestHeaders) => {
    headers = requestHeaders;
    if (!accepting) {
      refused += 1;
      return 503;
    }
    const payload = body as {
      resourceLogs: {
        resource?: { attributes?: { key: string; value: Record<string, unknown> }[] };
        scopeLogs: { logRecords: OtlpLogRecord[] }[];
      }[];
    };
    for (const resourceLogs of payload.resourceLogs) {
      const resource = Object.fromEntries(
        (resourceLogs.resource?.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]),
      );
      for (const scope of resourceLogs.scopeLogs)
        for (const record of scope.logRecords) records.push({ record, resource });
    }
    return 200;
  });
  return {
    url: `http://127.0.0.1:${receiver.port}/v1/logs`,
    records,
    get refused() {
      return refused;
    },
    get headers() {
      return headers;
    },
    down: () => {
      accepting = false;
    },
    up: () => {
      accepting = true;
    },
    close: () => receiver.close(),
  };
}

/** The value of a log record's attribute, whatever its OTLP type. */
export function logAttribute(record: OtlpLogRecord, key: string): unknown {
  const value = record.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}
