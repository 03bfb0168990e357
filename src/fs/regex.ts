import { McpdError } from '../errors.js';
import { WorkerPool } from './workers.js';

/** Longest pattern accepted; regexes are client input. */
export const MAX_PATTERN_LENGTH = 1000;
/** Lines longer than this are matched on their first part only. */
export const MAX_LINE_CHARS = 4000;
/** How much of a matching line is returned. */
export const MAX_SHOWN_CHARS = 500;

// Runs in a worker so that a catastrophically backtracking pattern can be stopped: a regex
// cannot be interrupted on the thread that runs it, but a worker can be terminated. Workers are
// pooled: each keeps its last compiled pattern, so a grep's files reuse it.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
let compiled = { key: '', regex: null };
parentPort.on('message', ({ id, source, flags, text, limit, maxLine, maxShown }) => {
  const key = flags + '/' + source;
  if (compiled.key !== key) compiled = { key, regex: new RegExp(source, flags) };
  const regex = compiled.regex;
  const hits = [];
  let lineNo = 0;
  let start = 0;
  while (start <= text.length && hits.length < limit) {
    let end = text.indexOf('\\n', start);
    if (end === -1) end = text.length;
    lineNo += 1;
    let line = text.slice(start, end);
    if (line.endsWith('\\r')) line = line.slice(0, -1);
    const probe = line.length > maxLine ? line.slice(0, maxLine) : line;
    regex.lastIndex = 0;
    if (regex.test(probe)) hits.push([lineNo, probe.length > maxShown ? probe.slice(0, maxShown) + '…' : probe]);
    if (end === text.length) break;
    start = end + 1;
  }
  parentPort.postMessage({ id, hits });
});
`;

export interface LineMatch {
  readonly line: number;
  readonly text: string;
}

export function compilePattern(source: string, caseInsensitive: boolean): { source: string; flags: string } {
  if (source.length === 0) throw new McpdError('INVALID_ARGUMENT', 'the pattern must not be empty');
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new McpdError('INVALID_ARGUMENT', `the pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
  }
  const flags = caseInsensitive ? 'i' : '';
  try {
    new RegExp(source, flags);
  } catch (error) {
    throw new McpdError('INVALID_ARGUMENT', `not a valid regular expression: ${(error as Error).message}`);
  }
  return { source, flags };
}

/**
 * Workers shared by every grep of the process, matching off the event loop with a time budget per
 * file; a worker whose pattern ran past the budget is terminated and replaced.
 */
export class RegexPool {
  private readonly pool: WorkerPool;
  private nextId = 0;

  constructor(size: number) {
    this.pool = new WorkerPool(WORKER_SOURCE, size);
  }

  async match(
    pattern: { source: string; flags: string },
    text: string,
    limit: number,
    timeoutMs: number,
  ): Promise<LineMatch[]> {
    const worker = await this.pool.acquire();
    const id = this.nextId++;
    return new Promise<LineMatch[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        this.pool.discard(worker);
        reject(
          new McpdError('INVALID_ARGUMENT', `the pattern took longer than ${timeoutMs} ms on one file; simplify it`),
        );
      }, timeoutMs);
      const onMessage = (message: { id: number; hits: [number, string][] }) => {
        if (message.id !== id) return;
        cleanup();
        this.pool.release(worker);
        resolve(message.hits.map(([line, lineText]) => ({ line, text: lineText })));
      };
      const onError = (error: Error) => {
        cleanup();
        this.pool.discard(worker);
        reject(error);
      };
      const cleanup = () => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.postMessage({ id, ...pattern, text, limit, maxLine: MAX_LINE_CHARS, maxShown: MAX_SHOWN_CHARS });
    });
  }

  /** Workers started and not terminated. */
  get workers(): number {
    return this.pool.workers;
  }

  /** Terminates every worker; matches still waiting fail. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
