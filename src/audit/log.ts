import { AuditChain } from './chain.js';
import type { AuditRecord, ProcessStart } from './record.js';
import type { AuditSink, RotationReason } from './sink.js';

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

  /**
   * Begins a new audit file now, after logrotate (or an operator) moved the current one away: the
   * SIGUSR1 of `copytruncate`-free rotation. The new file opens with a record saying so.
   */
  reopen(): void {
    this.switchFile('reopen');
  }

  private switchFile(reason: RotationReason): void {
    const switched = this.sink.rotate?.(reason) ?? null;
    // A sink without files (stderr, a collector) has nothing to switch, and nothing to say.
    if (switched === null) return;
    const { previous } = switched;
    const why = {
      size: 'the audit file reached its size limit',
      time: 'a new rotation period began',
      reopen: 'the audit file was reopened on request (SIGUSR1)',
    }[reason];
    this.ofProcess('rotate', 'rotate', 'rotate', previous === null ? why : `${why}; the previous file is ${previous}`, {
      rotation: { reason, previous },
    });
  }

  /** A record of the process itself (no caller, no path): what it did, and why it says so. */
  private ofProcess(
    requestId: string,
    method: string,
    op: 'genesis' | 'reload' | 'rotate',
    reason: string,
    extra: Pick<AuditFields, 'process' | 'config' | 'rotation'>,
  ): void {
    this.append({
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
    // A file switch falls between two records: the new file begins with the record that says why,
    // whose prev is the last hash of the file before.
    const due = this.sink.rotationDue?.() ?? null;
    if (due !== null) this.switchFile(due);
    this.append(fields);
  }

  private append(fields: AuditFields): void {
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
      ...(fields.rotation ? { rotation: fields.rotation } : {}),
      prev: '',
      hash: '',
    };
    const linked = this.chain.link(record as AuditRecord & { seq: number; prev: string; hash: string });
    // One JSON text per record, whatever the number of sinks.
    this.sink.write(linked, JSON.stringify(linked));
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
