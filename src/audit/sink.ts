import SonicBoomModule, { type SonicBoom } from 'sonic-boom';
import type { AuditRecord } from './record.js';

/** Where audit lines go. Writes never throw into the request path; flush and close are awaited on shutdown. */
export interface AuditSink {
  /**
   * False while records cannot be written (the destination fails, or too many wait to be): mcpd
   * then serves no file operation and reports not ready, rather than serve unaudited.
   */
  readonly healthy: boolean;
  write(record: AuditRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Records nothing: for commands that judge access without serving it (check-config, explain). */
export const DISCARD_SINK: AuditSink = { healthy: true, write() {}, async flush() {}, async close() {} };

/** Records waiting to be written past this many bytes: the sink cannot keep up. */
export const MAX_PENDING_AUDIT_BYTES = 8 * 1024 * 1024;
/** How often a failing sink tries again to write what it holds. */
const RETRY_MS = 500;

export type AuditDestination = { readonly fd: number } | { readonly file: string };

/**
 * JSON lines to a file descriptor (stderr by default) or appended to a file, buffered by
 * sonic-boom and flushed on close. Never stdout: in stdio mode stdout is the protocol channel.
 */
export class StreamAuditSink implements AuditSink {
  private readonly stream: SonicBoom;
  private readonly ownsDescriptor: boolean;
  private closed = false;
  /** Bytes handed to the stream and not yet written: what would be lost if the process died now. */
  private pending = 0;
  private failure: Error | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    destination: AuditDestination,
    onError?: (error: Error) => void,
    private readonly onRecovered?: () => void,
  ) {
    this.ownsDescriptor = 'file' in destination;
    if ('fd' in destination && destination.fd === 1) throw new Error('the audit log must never be written to stdout');
    this.stream =
      'fd' in destination
        ? new SonicBoomModule.SonicBoom({ fd: destination.fd, sync: false, minLength: 0 })
        : new SonicBoomModule.SonicBoom({
            dest: destination.file,
            append: true,
            mkdir: true,
            sync: false,
            minLength: 0,
          });
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

  write(record: AuditRecord): void {
    if (this.closed) return;
    const line = `${JSON.stringify(record)}\n`;
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
    // stderr is shared with the logger and outlives us: flushed, never closed.
    if (!this.ownsDescriptor) return;
    await new Promise<void>((resolve) => {
      this.stream.once('close', () => resolve());
      this.stream.once('error', () => resolve());
      this.stream.end();
    });
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
