import { Worker } from 'node:worker_threads';
import { McpdError } from '../errors.js';

/**
 * A few worker threads running one script, shared by the whole process: a caller waits for a free
 * worker rather than starting its own, and a worker that had to be stopped (a regex past its time
 * budget) is replaced on the next use. Workers do not keep the process alive.
 */
export class WorkerPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: ((worker: Worker | undefined) => void)[] = [];
  private live = 0;
  private closed = false;
  private nextId = 0;

  constructor(
    private readonly source: string,
    readonly size: number,
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
    if (worker) return Promise.resolve(worker);
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
    else this.idle.push(worker);
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
