import type { AuditRecord } from './record.js';
import type { AuditSink } from './sink.js';

export type AuditFields = Omit<AuditRecord, 'time'>;

/** Stamps and writes audit records. The record's field order is fixed so the lines diff well. */
export class AuditLog {
  constructor(
    private readonly sink: AuditSink,
    private readonly now: () => Date = () => new Date(),
  ) {}

  write(fields: AuditFields): void {
    const record: AuditRecord = {
      time: this.now().toISOString(),
      requestId: fields.requestId,
      principal: fields.principal,
      client: fields.client,
      userAgent: fields.userAgent,
      transport: fields.transport,
      method: fields.method,
      tool: fields.tool,
      root: fields.root,
      path: fields.path,
      requested: fields.requested,
      op: fields.op,
      decision: fields.decision,
      rule: fields.rule,
      reason: fields.reason,
      bytes: fields.bytes,
      durationMs: fields.durationMs,
      outcome: fields.outcome,
      ...(fields.error ? { error: fields.error } : {}),
      ...(fields.database ? { database: fields.database } : {}),
      ...(fields.traceId ? { traceId: fields.traceId } : {}),
    };
    this.sink.write(record);
  }

  /** Whether records are being written (see AuditSink.healthy). */
  get healthy(): boolean {
    return this.sink.healthy;
  }

  flush(): Promise<void> {
    return this.sink.flush();
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}
