import { existsSync, type Stats, statSync } from 'node:fs';
import { type FileHandle, mkdir, open, rename } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { AuditRecord } from './record.js';
import { type AuditSink, Drain, MAX_PENDING_AUDIT_BYTES, type RotationReason } from './sink.js';

/** When a file is closed and a new one begun. */
export interface RotationPolicy {
  /** Begin a new file once this one holds this many bytes (a record is never split). */
  readonly maxBytes: number | null;
  /** Begin a new file with the first record of each UTC hour or day. */
  readonly interval: 'hourly' | 'daily' | null;
}

export const NO_ROTATION: RotationPolicy = { maxBytes: null, interval: null };

/** A file switch, queued between two lines so that every line lands whole in exactly one file. */
interface Switch {
  readonly kind: 'rotate' | 'reopen';
  /** For a rotation: the name the current file takes. */
  readonly rotatedTo?: string;
}

/** How often a failing file is tried again; what it holds is kept meanwhile. */
const RETRY_MS = 500;
/** Lines gathered into one write. */
const BATCH_BYTES = 1024 * 1024;
/** Audit files are for the operator and the shipper, not for every user of the host. */
const FILE_MODE = 0o640;
/** How long close() keeps trying a failing file before it gives up on what it holds. */
const CLOSE_BUDGET_MS = 5_000;

const PERIOD_MS = { hourly: 3_600_000, daily: 86_400_000 } as const;

/**
 * The audit log's file: JSON lines appended in order, never a line split between two writes to
 * two files. A rotation (by size, by time) or a reopen (SIGUSR1, after logrotate has moved the
 * file) is queued between lines, so the new file begins exactly where the chain says (with the
 * record about the switch). A failing write keeps what it could not write and tries again;
 * nothing is dropped, and the sink reports itself unhealthy meanwhile so that mcpd stops serving.
 */
export class FileAuditSink implements AuditSink {
  private handle: FileHandle | null = null;
  private readonly queue: (string | Switch)[] = [];
  /** Bytes of a batch the file took only in part: written before anything else. */
  private remainder: Buffer | null = null;
  /** Bytes queued and not yet written: what would be lost if the process died now. */
  private pending = 0;
  /** Bytes in the current file, counting what is queued for it. */
  private fileBytes: number;
  private periodEnds: number;
  private running = false;
  private failure: Error | undefined;
  private closed = false;
  private readonly drain = new Drain(() => this.busy());
  private lastRotatedName = '';

  constructor(
    private readonly path: string,
    private readonly rotation: RotationPolicy = NO_ROTATION,
    private readonly events: {
      readonly onError?: (error: Error) => void;
      readonly onRecovered?: () => void;
      readonly now?: () => number;
    } = {},
  ) {
    // A file found at start is appended to: its size counts toward maxBytes, and a file begun in
    // an earlier period is rotated by the first record of this one.
    const found = existingFile(path);
    this.fileBytes = found?.size ?? 0;
    this.periodEnds = this.periodEnd(found && found.size > 0 ? found.mtimeMs : this.now());
  }

  get healthy(): boolean {
    return this.failure === undefined && this.pending <= MAX_PENDING_AUDIT_BYTES;
  }

  write(_record: AuditRecord, json: string): void {
    if (this.closed) return;
    const line = `${json}\n`;
    const bytes = Buffer.byteLength(line);
    this.pending += bytes;
    this.fileBytes += bytes;
    this.queue.push(line);
    this.kick();
  }

  rotationDue(): RotationReason | null {
    if (this.closed) return null;
    if (this.rotation.maxBytes !== null && this.fileBytes >= this.rotation.maxBytes) return 'size';
    if (this.periodEnds !== Number.POSITIVE_INFINITY && this.now() >= this.periodEnds) return 'time';
    return null;
  }

  /**
   * Queues the switch to a new file after every line written so far: the current file takes a
   * dated name (returned, for the record that opens the next file), or, for a reopen, is left
   * where logrotate moved it. What is written next goes to a new file at the configured path.
   */
  rotate(reason: RotationReason): { readonly previous: string | null } | null {
    if (this.closed) return null;
    this.fileBytes = 0;
    this.periodEnds = this.periodEnd(this.now());
    if (reason === 'reopen') {
      this.queue.push({ kind: 'reopen' });
      this.kick();
      return { previous: null };
    }
    const rotatedTo = this.rotatedName();
    this.queue.push({ kind: 'rotate', rotatedTo });
    this.kick();
    return { previous: basename(rotatedTo) };
  }

  flush(): Promise<void> {
    return this.drain.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A failing file is tried again for a while.
    if (!(await this.drain.close(CLOSE_BUDGET_MS, RETRY_MS))) {
      this.events.onError?.(
        new Error(`closing with ${this.pending} bytes of audit records that could not be written to ${this.path}`),
      );
    }
    // Wait out a write in progress before the handle goes.
    while (this.running) await this.drain.settled();
    await this.closeHandle();
  }

  private busy(): boolean {
    return this.queue.length > 0 || this.remainder !== null || this.running;
  }

  private now(): number {
    return this.events.now?.() ?? Date.now();
  }

  /** The end of the rotation period `time` falls in (never, without an interval). */
  private periodEnd(time: number): number {
    if (this.rotation.interval === null) return Number.POSITIVE_INFINITY;
    const period = PERIOD_MS[this.rotation.interval];
    return (Math.floor(time / period) + 1) * period;
  }

  /** `audit.log.20261130T180443.123Z`: sorts in time order beside its siblings, unique in this process. */
  private rotatedName(): string {
    const stamp = new Date(this.now()).toISOString().replace(/[-:]/g, '');
    let name = `${this.path}.${stamp}`;
    for (let n = 1; name === this.lastRotatedName || existsSync(name); n++) name = `${this.path}.${stamp}.${n}`;
    this.lastRotatedName = name;
    return name;
  }

  private kick(): void {
    if (this.running || this.drain.retrying) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      while (this.remainder !== null || this.queue.length > 0) {
        if (this.remainder !== null) {
          await this.writeAll(this.remainder);
          continue;
        }
        const head = this.queue[0] as string | Switch;
        if (typeof head !== 'string') {
          await this.switchFile(head);
          this.queue.shift();
          continue;
        }
        let batch = '';
        let taken = 0;
        while (taken < this.queue.length && batch.length < BATCH_BYTES) {
          const item = this.queue[taken] as string | Switch;
          if (typeof item !== 'string') break;
          batch += item;
          taken += 1;
        }
        this.queue.splice(0, taken);
        await this.writeAll(Buffer.from(batch));
      }
      if (this.failure !== undefined) {
        this.failure = undefined;
        this.events.onRecovered?.();
      }
    } catch (error) {
      if (this.failure === undefined) this.events.onError?.(error as Error);
      this.failure = error as Error;
      this.drain.retryIn(RETRY_MS, () => this.kick());
    } finally {
      this.running = false;
      if (!this.busy() || this.failure !== undefined) this.drain.settle();
    }
  }

  /** Writes the buffer whole; on failure what is left becomes the remainder, written first next time. */
  private async writeAll(buffer: Buffer): Promise<void> {
    this.remainder = buffer;
    let offset = 0;
    try {
      this.handle ??= await this.openFile();
      while (offset < buffer.length) {
        const { bytesWritten } = await this.handle.write(buffer, offset, buffer.length - offset);
        offset += bytesWritten;
        this.pending -= bytesWritten;
      }
      this.remainder = null;
    } finally {
      if (this.remainder !== null && offset > 0) this.remainder = buffer.subarray(offset);
    }
  }

  private async switchFile(change: Switch): Promise<void> {
    await this.closeHandle();
    // The name was checked free when it was chosen (rotatedName); nothing else writes beside us.
    if (change.kind === 'rotate' && change.rotatedTo !== undefined && existsSync(this.path)) {
      await rename(this.path, change.rotatedTo);
    }
    this.handle = await this.openFile();
  }

  private async openFile(): Promise<FileHandle> {
    await mkdir(dirname(this.path), { recursive: true });
    return open(this.path, 'a', FILE_MODE);
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle === null) return;
    try {
      await handle.sync();
    } catch {
      // A file that cannot be synced is still closed; the failure was reported by its writes.
    }
    await handle.close();
  }
}

function existingFile(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
