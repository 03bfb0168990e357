import { createRequire } from 'node:module';
import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type * as AsyncHooksContext from '@opentelemetry/context-async-hooks';
import type * as OtelCore from '@opentelemetry/core';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as OtelResources from '@opentelemetry/resources';
import type * as SdkTraceBase from '@opentelemetry/sdk-trace-base';
import type { BasicTracerProvider, SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * The OpenTelemetry SDK, loaded only when tracing is on: with it off, a process never pays for it
 * (about 10 MB of resident memory and a fifth of start-up). Required, not imported with import(),
 * so that building the tracer stays synchronous.
 */
const load = createRequire(import.meta.url);
const sdk = () => ({
  ...(load('@opentelemetry/sdk-trace-base') as typeof SdkTraceBase),
  ...(load('@opentelemetry/resources') as typeof OtelResources),
  ...(load('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp),
  ...(load('@opentelemetry/context-async-hooks') as typeof AsyncHooksContext),
});

export interface TracingSettings {
  readonly enabled: boolean;
  /** OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces. */
  readonly endpoint: string;
  /** Share of new traces sampled (a parent's decision is always followed). */
  readonly sampleRatio: number;
  readonly serviceName: string;
}

/** W3C trace context as carried in `_meta` (2026-07-28) or in HTTP headers. */
export interface TraceCarrier {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

let propagator: OtelCore.W3CTraceContextPropagator | undefined;
const getter = {
  keys: (carrier: TraceCarrier) => Object.keys(carrier),
  get: (carrier: TraceCarrier, key: string) => carrier[key as keyof TraceCarrier],
};

function extract(carrier: TraceCarrier | undefined): Context | undefined {
  if (!carrier?.traceparent) return undefined;
  propagator ??= new (load('@opentelemetry/core') as typeof OtelCore).W3CTraceContextPropagator();
  const extracted = propagator.extract(ROOT_CONTEXT, carrier, getter);
  return trace.getSpanContext(extracted) ? extracted : undefined;
}

/** How long shutdown waits for the last spans to reach the collector. */
const SHUTDOWN_EXPORT_BUDGET_MS = 2_000;

/**
 * OpenTelemetry tracing, off unless configured: then every call goes to the API's no-op tracer
 * and costs next to nothing. On, spans are batched to an OTLP/HTTP endpoint and flushed on
 * shutdown; the active span flows with the request through AsyncLocalStorage, so the policy and
 * file layers open child spans without being handed anything.
 */
export class Tracing {
  readonly tracer: Tracer;
  private readonly provider: BasicTracerProvider | undefined;

  constructor(settings: TracingSettings, version: string, exporter?: SpanExporter) {
    if (!settings.enabled) {
      this.tracer = trace.getTracer('mcpd', version);
      this.provider = undefined;
      return;
    }
    const otel = sdk();
    this.provider = new otel.BasicTracerProvider({
      resource: otel.resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': version }),
      sampler: new otel.ParentBasedSampler({ root: new otel.TraceIdRatioBasedSampler(settings.sampleRatio) }),
      spanProcessors: [new otel.BatchSpanProcessor(exporter ?? new otel.OTLPTraceExporter({ url: settings.endpoint }))],
    });
    context.setGlobalContextManager(new otel.AsyncLocalStorageContextManager().enable());
    this.tracer = this.provider.getTracer('mcpd', version);
  }

  get enabled(): boolean {
    return this.provider !== undefined;
  }

  /**
   * The SERVER span of one MCP request. Its parent is the trace context in the request's `_meta`
   * when there is one, else the HTTP `traceparent` header; when both are there and differ, the
   * other one is linked.
   */
  startServerSpan(
    name: string,
    attributes: Attributes,
    parents: { meta?: TraceCarrier; header?: TraceCarrier },
  ): { span: Span; context: Context } {
    const fromMeta = extract(parents.meta);
    const fromHeader = extract(parents.header);
    const parent = fromMeta ?? fromHeader ?? ROOT_CONTEXT;
    const links: Link[] = [];
    const other = fromMeta && fromHeader ? trace.getSpanContext(fromHeader) : undefined;
    if (other && other.traceId !== trace.getSpanContext(parent)?.traceId) {
      links.push({ context: other, attributes: { 'mcpd.link.source': 'http.traceparent' } });
    }
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes, links }, parent);
    return { span, context: trace.setSpan(parent, span) };
  }

  /** Runs `work` in a child span of the active one; records a failure as the span's error. */
  async inSpan<T>(name: string, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
    if (!this.provider) return work(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
    return this.tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
      try {
        return await work(span);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute('error.type', errorType(error));
        throw error;
      } finally {
        span.end();
      }
    });
  }

  /** The trace id of the active span, for the audit record; null when not tracing. */
  activeTraceId(): string | null {
    if (!this.provider) return null;
    const spanContext = trace.getActiveSpan()?.spanContext();
    return spanContext && trace.isSpanContextValid(spanContext) ? spanContext.traceId : null;
  }

  /**
   * Exports what is still batched, within `budgetMs`: the exporter retries a collector that is down
   * for up to 10 s, time a terminating pod does not have. Rejects when the export fails or is late.
   */
  async shutdown(budgetMs = SHUTDOWN_EXPORT_BUDGET_MS): Promise<void> {
    if (!this.provider) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`trace export did not finish in ${budgetMs} ms`)), budgetMs);
      timer.unref();
    });
    try {
      await Promise.race([this.provider.shutdown(), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export function errorType(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'Error';
}

export { context, SpanStatusCode, trace };
