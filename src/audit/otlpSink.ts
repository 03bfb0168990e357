import { createRequire } from 'node:module';
import type * as OtelCore from '@opentelemetry/core';
import type * as OtlpLogs from '@opentelemetry/exporter-logs-otlp-http';
import type * as OtelResources from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { AuditRecord } from './record.js';
import { type AuditSink, Drain } from './sink.js';

/**
 * The OpenTelemetry logs exporter, loaded only when this sink is configured (as tracing loads its
 * SDK): a process that ships no audit over OTLP never pays for it.
 */
const load = createRequire(import.meta.url);

export interface OtlpAuditSettings {
  /** OTLP/HTTP logs endpoint, e.g. http://otel-collector:4318/v1/logs. */
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  /** How long one export may take, its own retries included. */
  readonly timeoutMs: number;
  /** Records held for the collector past which the sink reports unhealthy (mcpd stops serving). */
  readonly maxQueueRecords: number;
  readonly serviceName: string;
  readonly version: string;
}

/** Records sent in one export request. */
const BATCH_RECORDS = 512;
/** Waits between failed exports: doubled from the first to the last, then held. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;
/** How long close() keeps trying to deliver what it holds. */
const CLOSE_BUDGET_MS = 5_000;
/** OTLP SeverityNumber INFO and WARN: a denial or a failure stands out in a log backend. */
const SEVERITY_INFO = 9;
const SEVERITY_WARN = 13;

interface LogSink {
  export(records: ReadableLogRecord[], done: (result: { code: number; error?: Error }) => void): void;
  shutdown(): Promise<void>;
}

/**
 * Audit records to an OpenTelemetry collector as OTLP log records, so that they leave the host
 * as they are made (the defence against a host whose files can be rewritten). The body is the
 * record's JSON line exactly as a file sink writes it, so a chain can be verified from what the
 * collector kept; its key fields are attributes too, for querying.
 *
 * Delivery is at least once and in order: records stay queued until the collector has accepted
 * them, a failed export is retried (with backoff) with the same records at the head, and while it
 * fails, or more than `maxQueueRecords` wait, the sink is unhealthy, which stops mcpd serving.
 */
export class OtlpAuditSink implements AuditSink {
  private readonly exporter: LogSink;
  private readonly resource: OtelResources.Resource;
  private readonly scope: { name: string; version: string };
  /** The exporter's result code for a batch the collector took. */
  private readonly success: number;
  private readonly queue: ReadableLogRecord[] = [];
  private inFlight = false;
  private scheduled = false;
  private failure: Error | undefined;
  private backoff = RETRY_FIRST_MS;
  private closed = false;
  private readonly drain = new Drain(() => this.busy());

  constructor(
    private readonly settings: OtlpAuditSettings,
    private readonly events: { readonly onError?: (error: Error) => void; readonly onRecovered?: () => void } = {},
    exporter?: LogSink,
  ) {
    const { resourceFromAttributes } = load('@opentelemetry/resources') as typeof OtelResources;
    this.resource = resourceFromAttributes({
      'service.name': settings.serviceName,
      'service.version': settings.version,
    });
    this.scope = { name: 'mcpd.audit', version: settings.version };
    this.success = (load('@opentelemetry/core') as typeof OtelCore).ExportResultCode.SUCCESS;
    this.exporter =
      exporter ??
      new (load('@opentelemetry/exporter-logs-otlp-http') as typeof OtlpLogs).OTLPLogExporter({
        url: settings.endpoint,
        headers: { ...settings.headers },
        timeoutMillis: settings.timeoutMs,
      });
  }

  get healthy(): boolean {
    return this.failure === undefined && this.queue.length <= this.settings.maxQueueRecords;
  }

  /** Records not yet accepted by the collector. */
  get pendingRecords(): number {
    return this.queue.length;
  }

  write(record: AuditRecord, json: string): void {
    if (this.closed) return;
    // Made once here, not at each attempt to send it.
    this.queue.push(this.logRecord(record, json));
    this.schedule();
  }

  flush(): Promise<void> {
    return this.drain.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!(await this.drain.close(CLOSE_BUDGET_MS, RETRY_FIRST_MS))) {
      this.events.onError?.(
        new Error(
          `closing with ${this.queue.length} audit records the collector at ${this.settings.endpoint} did not take`,
        ),
      );
    }
    while (this.inFlight) await this.drain.settled();
    await this.exporter.shutdown().catch(() => {});
  }

  private busy(): boolean {
    return this.queue.length > 0 || this.inFlight;
  }

  /** Next turn of the event loop: the records of this one travel together. */
  private schedule(): void {
    if (this.scheduled || this.inFlight || this.drain.retrying) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.slice(0, BATCH_RECORDS);
    this.inFlight = true;
    const done = (error: Error | undefined) => {
      this.inFlight = false;
      if (error === undefined) {
        this.queue.splice(0, batch.length);
        this.backoff = RETRY_FIRST_MS;
        if (this.failure !== undefined) {
          this.failure = undefined;
          this.events.onRecovered?.();
        }
        if (this.queue.length > 0) this.schedule();
      } else {
        if (this.failure === undefined) this.events.onError?.(error);
        this.failure = error;
        this.drain.retryIn(this.backoff, () => this.send());
        this.backoff = Math.min(this.backoff * 2, RETRY_MAX_MS);
      }
      if (!this.busy() || this.failure !== undefined) this.drain.settle();
    };
    try {
      this.exporter.export(batch, (result) => {
        done(
          result.code === this.success
            ? undefined
            : (result.error ?? new Error(`the collector at ${this.settings.endpoint} refused the audit records`)),
        );
      });
    } catch (error) {
      done(error as Error);
    }
  }

  private logRecord(record: AuditRecord, json: string): ReadableLogRecord {
    const millis = Date.parse(record.time);
    const hrTime: [number, number] = [Math.floor(millis / 1000), (millis % 1000) * 1_000_000];
    const warn = record.decision === 'deny' || record.outcome === 'error';
    return {
      hrTime,
      hrTimeObserved: hrTime,
      severityNumber: warn ? SEVERITY_WARN : SEVERITY_INFO,
      severityText: warn ? 'WARN' : 'INFO',
      body: json,
      eventName: 'mcpd.audit',
      resource: this.resource,
      instrumentationScope: this.scope,
      attributes: {
        'mcpd.audit.seq': record.seq,
        'mcpd.audit.hash': record.hash,
        'mcpd.audit.op': record.op,
        'mcpd.audit.decision': record.decision,
        'mcpd.audit.outcome': record.outcome,
        'mcpd.audit.principal': record.principal,
        'mcpd.audit.rule': record.rule,
        ...(record.root === null ? {} : { 'mcpd.audit.root': record.root }),
        ...(record.path === null ? {} : { 'mcpd.audit.path': record.path }),
        ...(record.traceId === undefined ? {} : { 'mcpd.audit.trace_id': record.traceId }),
      },
      droppedAttributesCount: 0,
    } as ReadableLogRecord;
  }
}
