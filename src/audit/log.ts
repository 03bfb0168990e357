import { AuditChain } from './chain.js';
import type { AuditRecord, ProcessStart } from './record.js';
import type { AuditSink } from './sink.js';

export type AuditFields = Omit<AuditRecord, 'time' | 'seq' | 'prev' | 'hash'>;

/**
 * Stamps, chains and writes audit records. The record's field order is fixed so the lines diff
 * well; the chain (chain.ts) makes each one answer for the one before.
 */
export class AuditLog {
  private readonly chain: AuditChain;

  constructor(
    private readonly sink: AuditSink,
    private readonly now: () => Date = () => new Date(),
    key: Buffer | null = null,
  ) {
    this.chain = new AuditChain(key);
  }

  get algorithm(): ProcessStart['chain'] {
    return this.chain.algorithm;
  }

  /** The first record of the process: who starts the chain, with which version and configuration. */
  genesis(start: Omit<ProcessStart, 'chain'>): void {
    this.ofProcess(
      `process-${start.pid}`,
      'process',
      'genesis',
      `mcpd ${start.version} started on ${start.host} (pid ${start.pid})`,
      {
        process: { ...start, chain: this.chain.algorithm },
      },
    );
  }

  /** A configuration reload, applied: the file's hash before and after, and the settings kept. */
  reloaded(before: string, after: string, kept: readonly string[]): void {
    const reason = before === after ? 'configuration reloaded, file unchanged' : 'configuration reloaded';
    this.ofProcess('reload', 'reload', 'reload', reason, { config: { before, after, kept } });
  }

  /** A record of the process itself (no caller, no path): what it did, and why it says so. */
  private ofProcess(
    requestId: string,
    method: string,
    op: 'genesis' | 'reload',
    reason: string,
    extra: Pick<AuditFields, 'process' | 'config'>,
  ): void {
    this.write({
      requestId,
      principal: 'mcpd',
      client: null,
      userAgent: null,
      transport: 'cli',
      method,
      tool: null,
      root: null,
      path: null,
      requested: '',
      op,
      decision: 'allow',
      rule: `audit:${op}`,
      reason,
      bytes: null,
      durationMs: 0,
      outcome: 'ok',
      ...extra,
    });
  }

  write(fields: AuditFields): void {
    // One object per record, built in the line's field order (seq second; prev and hash last) and
    // linked into the chain in place.
    const record: AuditRecord = {
      time: this.now().toISOString(),
      seq: 0,
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
      ...(fields.process ? { process: fields.process } : {}),
      ...(fields.config ? { config: fields.config } : {}),
      prev: '',
      hash: '',
    };
    this.sink.write(this.chain.link(record as AuditRecord & { seq: number; prev: string; hash: string }));
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
