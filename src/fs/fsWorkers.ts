import { DIRECTORY_HANDLERS, DirectoryReaders } from './readers.js';
import { STAT_HANDLERS, StatPool } from './stats.js';
import { SYSCALL_HANDLERS, SyscallWorkers } from './syscalls.js';
import { WorkerPool } from './workers.js';

/**
 * Each handler set registers functions on `handlers` by message kind, in a scope of its own, and
 * answers through `parentPort` with the id it was given.
 */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const handlers = Object.create(null);
${[DIRECTORY_HANDLERS, STAT_HANDLERS, SYSCALL_HANDLERS].map((handlers) => `(() => {${handlers}})();`).join('\n')}
parentPort.on('message', (message) => handlers[message.kind](message));
`;

/**
 * The worker threads that do file-system work synchronously off the event loop: directory reads,
 * stats of listing pages, path resolution and small-file reads. One pool serves them all because
 * a worker thread costs about 9 MB of resident memory, and each kind of work is short: a pool per
 * kind would hold three times the threads for no more throughput on the cores mcpd is sized for.
 * grep's regex workers stay apart: a runaway pattern gets its worker terminated.
 */
export class FileSystemWorkers {
  readonly readers: DirectoryReaders;
  readonly stats: StatPool;
  readonly syscalls: SyscallWorkers;
  private readonly pool: WorkerPool;

  constructor(size: number) {
    this.pool = new WorkerPool(SOURCE, size);
    this.readers = new DirectoryReaders(this.pool);
    this.stats = new StatPool(this.pool);
    this.syscalls = new SyscallWorkers(this.pool);
  }

  /** Terminates the workers; work still waiting fails. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
