import { Worker } from 'node:worker_threads';
import { McpdError } from '../errors.js';

/**
 * The size, time and kind of many entries of one directory, stat'ed off the event loop. A stat
 * through fs/promises costs the main thread about 12 µs (the request, the Stats object, the promise),
 * so a page of a thousand entries is 12 ms of it, and sixteen pages at once are two hundred. A
 * worker stats the names synchronously (same process, same descriptor table, so the directory's
 * /proc/self/fd path works there too) and sends back four typed arrays.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { lstatSync } = require('node:fs');
parentPort.on('message', ({ id, directory, names }) => {
  const n = names.length;
  const size = new Float64Array(n);
  const mtimeMs = new Float64Array(n);
  const nlink = new Float64Array(n);
  const kind = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let stats;
    try {
      stats = lstatSync(directory + '/' + names[i], { throwIfNoEntry: false });
    } catch {
      stats = undefined;
    }
    if (!stats) continue;
    size[i] = stats.size;
    mtimeMs[i] = stats.mtimeMs;
    nlink[i] = stats.nlink;
    kind[i] = stats.isFile() ? 1 : stats.isDirectory() ? 2 : 3;
  }
  parentPort.postMessage({ id, size, mtimeMs, nlink, kind }, [size.buffer, mtimeMs.buffer, nlink.buffer, kind.buffer]);
});
`;

/** What one entry is found to be: undefined when it is gone. */
export interface EntryStats {
  readonly isFile: boolean;
  readonly isDirectory: boolean;
  readonly size: number;
  readonly mtimeMs: number;
  readonly nlink: number;
}

interface Reply {
  readonly id: number;
  readonly size: Float64Array;
  readonly mtimeMs: Float64Array;
  readonly nlink: Float64Array;
  readonly kind: Uint8Array;
}

/** A few workers for the whole process; a batch waits for a free one. */
export class StatPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: ((worker: Worker) => void)[] = [];
  private live = 0;
  private nextId = 0;
  private closed = false;

  constructor(private readonly size: number) {}

  /** Stats `names` in `directory` (a path through a held descriptor), without following links. */
  async stat(directory: string, names: readonly string[]): Promise<(EntryStats | undefined)[]> {
    const worker = await this.acquire();
    const id = this.nextId++;
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        const onMessage = (message: Reply) => {
          if (message.id !== id) return;
          cleanup();
          resolve(message);
        };
        const onError = (error: Error) => {
          cleanup();
          reject(error);
        };
        const cleanup = () => {
          worker.off('message', onMessage);
          worker.off('error', onError);
        };
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.postMessage({ id, directory, names });
      });
      this.release(worker);
      return names.map((_, i) => {
        const kind = reply.kind[i];
        if (!kind) return undefined;
        return {
          isFile: kind === 1,
          isDirectory: kind === 2,
          size: reply.size[i] as number,
          mtimeMs: reply.mtimeMs[i] as number,
          nlink: reply.nlink[i] as number,
        };
      });
    } catch (error) {
      this.discard(worker);
      throw error;
    }
  }

  /** Terminates the workers; batches still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter(undefined as unknown as Worker);
    await Promise.all(this.idle.splice(0).map((worker) => worker.terminate()));
  }

  private acquire(): Promise<Worker> {
    if (this.closed) return Promise.reject(new McpdError('UNAVAILABLE', 'the server is shutting down'));
    const worker = this.idle.pop();
    if (worker) return Promise.resolve(worker);
    if (this.live < this.size) {
      this.live += 1;
      const fresh = new Worker(WORKER_SOURCE, { eval: true });
      fresh.unref();
      return Promise.resolve(fresh);
    }
    return new Promise((resolve, reject) =>
      this.waiting.push((next) =>
        next ? resolve(next) : reject(new McpdError('UNAVAILABLE', 'the server is shutting down')),
      ),
    );
  }

  private release(worker: Worker): void {
    const next = this.waiting.shift();
    if (next) next(worker);
    else if (this.closed) void worker.terminate();
    else this.idle.push(worker);
  }

  private discard(worker: Worker): void {
    void worker.terminate();
    this.live -= 1;
    // Someone waiting gets a fresh worker in its place.
    const next = this.waiting.shift();
    if (next) {
      this.live += 1;
      const fresh = new Worker(WORKER_SOURCE, { eval: true });
      fresh.unref();
      next(fresh);
    }
  }
}
