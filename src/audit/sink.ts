import SonicBoomModule, { type SonicBoom } from 'sonic-boom';
import type { AuditRecord } from './record.js';

/** Why a file sink begins a new file: its size, the clock, or a signal after logrotate moved it. */
export type RotationReason = 'size' | 'time' | 'reopen';

/** Where audit lines go. Writes never throw into the request path; flush and close are awaited on shutdown. */
export interface AuditSink {
  /**
   * False while records cannot be written (the destination fails, or too many wait to be): mcpd
   * then serves no file or database operation and reports not ready, rather than serve unaudited.
   */
  readonly healthy: boolean;
  /** One record, and its JSON text (made once by the log, for every sink). */
  write(record: AuditRecord, json: string): void;
  /** A sink that writes files: whether the next record should begin a new one. */
  rotationDue?(): RotationReason | null;
  /**
   * Queues the switch to a new file after what is written so far: the name the old file takes
   * (null for a reopen, where logrotate named it), or null itself when there is no file to switch.
   */
  rotate?(reason: RotationReason): { readonly previous: string | null } | null;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Who waits for a sink to write what it holds: flush() (until the next attempt ends) and close()
 * (through failures and retries, within a budget).
 */
export class Drain {
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly busy: () => boolean) {}

  /** Whether a retry is scheduled (nothing is attempted meanwhile). */
  get retrying(): boolean {
    return this.timer !== undefined;
  }

  /** Tries again in `ms`. The timer keeps the process up only while closing. */
  retryIn(ms: number, attempt: () => void): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      attempt();
    }, ms);
    if (!this.closing) this.timer.unref();
  }

  /**
   * For close(): keeps the retries going until nothing is held or `budgetMs` has passed, then
   * stops them. True when everything was written.
   */
  async close(budgetMs: number, tickMs: number): Promise<boolean> {
    this.closing = true;
    this.timer?.ref();
    await this.within(budgetMs, tickMs);
    clearTimeout(this.timer);
    this.timer = undefined;
    return !this.busy();
  }

  /** Resolves when nothing is held, or when the next write attempt ends (a failure included). */
  settled(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A write attempt ended: wakes whoever waits. */
  settle(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }

  /** Waits until nothing is held or `budgetMs` has passed, looking again at least every `tickMs`. */
  private async within(budgetMs: number, tickMs: number): Promise<void> {
    const deadline = Date.now() + budgetMs;
    while (this.busy() && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        timer = setTimeout(resolve, tickMs);
      });
      clearTimeout(timer);
    }
  }
}

/** Records nothing: for commands that judge access without serving it (check-config, explain). */
export const DISCARD_SINK: AuditSink = { healthy: true, write() {}, async flush() {}, async close() {} };

/**
 * Records waiting to be written past this many bytes (per sink): the sink cannot keep up, and mcpd
 * takes no new file or database operation until it has caught up. Records of calls already
 * running are still kept, so what is held stays within this plus what those calls record.
 */
export const MAX_PENDING_AUDIT_BYTES = 8 * 1024 * 1024;
/** How often a failing stream tries again to write what it holds. */
const RETRY_MS = 500;

/**
 * JSON lines to a file descriptor the process was given (stderr, or stdout when stdout is not the
 * protocol channel), buffered by sonic-boom. Descriptors are shared with the logger and outlive
 * us: flushed, never closed.
 */
export class StreamAuditSink implements AuditSink {
  private readonly stream: SonicBoom;
  private closed = false;
  /** Bytes handed to the stream and not yet written: what would be lost if the process died now. */
  private pending = 0;
  private failure: Error | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    fd: number,
    onError?: (error: Error) => void,
    private readonly onRecovered?: () => void,
  ) {
    this.stream = new SonicBoomModule.SonicBoom({ fd, sync: false, minLength: 0 });
    // sonic-boom keeps what it could not write and writes it on the next attempt: a failing
    // destination loses nothing while it is retried, and is healthy again once a write lands.
    this.stream.on('error', (error: Error) => {
      if (this.failure === undefined) onError?.(error);
      this.failure = error;
      this.retry ??= setInterval(() => this.tryAgain(), RETRY_MS).unref();
    });
    this.stream.on('write', (bytes: number) => {
      this.pending = Math.max(0, this.pending - bytes);
      if (this.failure === undefined) return;
      this.failure = undefined;
      clearInterval(this.retry);
      this.retry = undefined;
      this.onRecovered?.();
    });
  }

  get healthy(): boolean {
    return this.failure === undefined && this.pending <= MAX_PENDING_AUDIT_BYTES;
  }

  write(_record: AuditRecord, json: string): void {
    if (this.closed) return;
    const line = `${json}\n`;
    this.pending += Buffer.byteLength(line);
    this.stream.write(line);
  }

  /** An empty write makes sonic-boom write what it holds again (its flush does not, with minLength 0). */
  private tryAgain(): void {
    try {
      this.stream.write('');
    } catch {
      // Still failing: the next tick tries again.
    }
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.flush(() => resolve());
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.retry);
    this.retry = undefined;
    await this.flush();
    this.closed = true;
  }
}

/**
 * Every record to each of several sinks (a file on the host and a collector off it): healthy only
 * while all are, so that no destination silently falls behind.
 */
export class TeeAuditSink implements AuditSink {
  constructor(private readonly sinks: readonly AuditSink[]) {}

  get healthy(): boolean {
    return this.sinks.every((sink) => sink.healthy);
  }

  write(record: AuditRecord, json: string): void {
    for (const sink of this.sinks) sink.write(record, json);
  }

  rotationDue(): RotationReason | null {
    for (const sink of this.sinks) {
      const due = sink.rotationDue?.() ?? null;
      if (due !== null) return due;
    }
    return null;
  }

  rotate(reason: RotationReason): { readonly previous: string | null } | null {
    let switched: { readonly previous: string | null } | null = null;
    for (const sink of this.sinks) switched = sink.rotate?.(reason) ?? switched;
    return switched;
  }

  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.flush()));
  }

  async close(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.close()));
  }
}

/** Keeps records in memory; for unit tests of code that audits. */
export class MemoryAuditSink implements AuditSink {
  readonly healthy = true;
  readonly records: AuditRecord[] = [];
  write(record: AuditRecord): void {
    this.records.push(record);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
