import { Worker } from 'node:worker_threads';
import { McpdError } from '../errors.js';

/** Longest pattern accepted; regexes are client input. */
export const MAX_PATTERN_LENGTH = 1000;
/** Lines longer than this are matched on their first part only. */
export const MAX_LINE_CHARS = 4000;
/** How much of a matching line is returned. */
export const MAX_SHOWN_CHARS = 500;

// Runs in a worker so that a catastrophically backtracking pattern can be stopped: a regex
// cannot be interrupted on the thread that runs it, but a worker can be terminated.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const regex = new RegExp(workerData.source, workerData.flags);
parentPort.on('message', ({ id, text, limit, maxLine, maxShown }) => {
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

/** One regex, matched off-thread with a time budget per file. */
export class RegexMatcher {
  private readonly worker: Worker;
  private nextId = 0;

  constructor(
    pattern: { source: string; flags: string },
    private readonly timeoutMs: number,
  ) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: pattern });
    this.worker.unref();
  }

  match(text: string, limit: number): Promise<LineMatch[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        void this.worker.terminate();
        reject(
          new McpdError(
            'INVALID_ARGUMENT',
            `the pattern took longer than ${this.timeoutMs} ms on one file; simplify it`,
          ),
        );
      }, this.timeoutMs);
      const onMessage = (message: { id: number; hits: [number, string][] }) => {
        if (message.id !== id) return;
        cleanup();
        resolve(message.hits.map(([line, lineText]) => ({ line, text: lineText })));
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', onError);
      this.worker.postMessage({ id, text, limit, maxLine: MAX_LINE_CHARS, maxShown: MAX_SHOWN_CHARS });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
