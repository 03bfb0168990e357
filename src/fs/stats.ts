import type { WorkerPool } from './workers.js';

/**
 * The size, time and kind of many entries of one directory, stat'ed off the event loop. A stat
 * through fs/promises costs the main thread about 12 µs (the request, the Stats object, the promise),
 * so a page of a thousand entries is 12 ms of it, and sixteen pages at once are two hundred. A
 * worker stats the names synchronously (same process, same descriptor table, so the directory's
 * /proc/self/fd path works there too) and sends back four typed arrays.
 */
export const STAT_HANDLERS = `
const { lstatSync } = require('node:fs');
handlers.stat = ({ id, directory, names }) => {
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
};
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

/** Stats on the file-system workers (fs/fsWorkers.ts); a batch waits for a free one. */
export class StatPool {
  constructor(private readonly pool: WorkerPool) {}

  /** Stats `names` in `directory` (a path through a held descriptor), without following links. */
  async stat(directory: string, names: readonly string[]): Promise<(EntryStats | undefined)[]> {
    const reply = await this.pool.call<Reply>({ kind: 'stat', directory, names });
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
  }
}
