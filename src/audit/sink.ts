import SonicBoomModule, { type SonicBoom } from 'sonic-boom';
import type { AuditRecord } from './record.js';

/** Where audit lines go. Writes never throw into the request path; flush and close are awaited on shutdown. */
export interface AuditSink {
  write(record: AuditRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Records nothing: for commands that judge access without serving it (check-config, explain). */
export const DISCARD_SINK: AuditSink = { write() {}, async flush() {}, async close() {} };

export type AuditDestination = { readonly fd: number } | { readonly file: string };

/**
 * JSON lines to a file descriptor (stderr by default) or appended to a file, buffered by
 * sonic-boom and flushed on close. Never stdout: in stdio mode stdout is the protocol channel.
 */
export class StreamAuditSink implements AuditSink {
  private readonly stream: SonicBoom;
  private readonly ownsDescriptor: boolean;
  private closed = false;

  constructor(destination: AuditDestination, onError?: (error: Error) => void) {
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
    this.stream.on('error', (error: Error) => onError?.(error));
  }

  write(record: AuditRecord): void {
    if (this.closed) return;
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.flush(() => resolve());
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
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
  readonly records: AuditRecord[] = [];
  write(record: AuditRecord): void {
    this.records.push(record);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
