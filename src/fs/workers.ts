import { Worker } from 'node:worker_threads';
import { McpdError } from '../errors.js';

/** A worker idle this long is stopped: each holds about 9 MB, and an idle server should not. */
const IDLE_WORKER_MS = 30_000;

/**
 * A few worker threads running one script, shared by the whole process: a caller waits for a free
 * worker rather than starting its own, and a worker that had to be stopped (a regex past its time
 * budget) is replaced on the next use. Workers do not keep the process alive, and one left idle
 * for `idleMs` is stopped (the next call starts one again, in tens of milliseconds).
 */
export class WorkerPool {
  private readonly idle: Worker[] = [];
  private readonly retiring = new Map<Worker, NodeJS.Timeout>();
  private readonly waiting: ((worker: Worker | undefined) => void)[] = [];
  private live = 0;
  private closed = false;
  private nextId = 0;

  constructor(
    private readonly source: string,
    readonly size: number,
    private readonly idleMs: number = IDLE_WORKER_MS,
  ) {}

  /**
   * Sends `message` (with an `id` added) to a free worker and resolves with the reply carrying the
   * same id; a worker that fails is discarded, a worker that answered goes back to the pool.
   */
  async call<Reply extends { id: number }>(message: object): Promise<Reply> {
    const worker = await this.acquire();
    const id = this.nextId++;
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        const onMessage = (answer: Reply) => {
          if (answer.id !== id) return;
          cleanup();
          resolve(answer);
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
        worker.postMessage({ ...message, id });
      });
      this.release(worker);
      return reply;
    } catch (error) {
      this.discard(worker);
      throw error;
    }
  }

  /** Workers started and not terminated. */
  get workers(): number {
    return this.live;
  }

  acquire(): Promise<Worker> {
    if (this.closed) return Promise.reject(shuttingDown());
    const worker = this.idle.pop();
    if (worker) {
      clearTimeout(this.retiring.get(worker));
      this.retiring.delete(worker);
      return Promise.resolve(worker);
    }
    if (this.live < this.size) return Promise.resolve(this.start());
    return new Promise((resolve, reject) =>
      this.waiting.push((next) => (next ? resolve(next) : reject(shuttingDown()))),
    );
  }

  /** A worker done with its job, for the next caller. */
  release(worker: Worker): void {
    const next = this.waiting.shift();
    if (next) next(worker);
    else if (this.closed) void worker.terminate();
    else {
      this.idle.push(worker);
      this.retireLater(worker);
    }
  }

  /** Stops `worker` once it has been idle for `idleMs`, unless a caller takes it first. */
  private retireLater(worker: Worker): void {
    const timer = setTimeout(() => {
      this.retiring.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at < 0) return;
      this.idle.splice(at, 1);
      this.live -= 1;
      void worker.terminate();
    }, this.idleMs);
    timer.unref();
    this.retiring.set(worker, timer);
  }

  /** A worker that must not be reused (stopped mid-job, or failed); someone waiting gets a fresh one. */
  discard(worker: Worker): void {
    void worker.terminate();
    this.live -= 1;
    const next = this.waiting.shift();
    if (next) next(this.start());
  }

  /** Terminates every worker; callers still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.retiring.values()) clearTimeout(timer);
    this.retiring.clear();
    for (const waiter of this.waiting.splice(0)) waiter(undefined);
    await Promise.all(this.idle.splice(0).map((worker) => worker.terminate()));
  }

  private start(): Worker {
    this.live += 1;
    const worker = new Worker(this.source, { eval: true });
    worker.unref();
    return worker;
  }
}

function shuttingDown(): McpdError {
  return new McpdError('UNAVAILABLE', 'the server is shutting down');
}
