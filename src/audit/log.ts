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
    this.write({
      requestId: `process-${start.pid}`,
      principal: 'mcpd',
      client: null,
      userAgent: null,
      transport: 'cli',
      method: 'process',
      tool: null,
      root: null,
      path: null,
      requested: '',
      op: 'genesis',
      decision: 'allow',
      rule: 'audit:genesis',
      reason: `mcpd ${start.version} started on ${start.host} (pid ${start.pid})`,
      bytes: null,
      durationMs: 0,
      outcome: 'ok',
      process: { ...start, chain: this.chain.algorithm },
    });
  }

  /** A configuration reload, applied: the file's hash before and after, and the settings kept. */
  reloaded(before: string, after: string, kept: readonly string[]): void {
    this.write({
      requestId: 'reload',
      principal: 'mcpd',
      client: null,
      userAgent: null,
      transport: 'cli',
      method: 'reload',
      tool: null,
      root: null,
      path: null,
      requested: '',
      op: 'reload',
      decision: 'allow',
      rule: 'audit:reload',
      reason: before === after ? 'configuration reloaded, file unchanged' : 'configuration reloaded',
      bytes: null,
      durationMs: 0,
      outcome: 'ok',
      config: { before, after, kept },
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
