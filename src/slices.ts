import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * The main thread's time, shared. Work that can run long on the event loop (walks, sorts of big
 * directories, pages of a listing, checksums of big chunks) runs in slices and asks here before
 * each one. All of it together gets SLICE_MS per turn of the loop: once that is spent, every
 * caller waits for the next turn, after the loop has polled for I/O, so a probe or a small call
 * is never queued behind more than a slice, however many heavy calls run at once. (A budget per
 * call would not do: thirty walks of ten milliseconds each are three hundred.)
 */
export const SLICE_MS = 10;

let turnStarted = performance.now();
let turnMarked = false;

function startTurn(): void {
  turnStarted = performance.now();
  turnMarked = false;
}

/** Whether this turn's slice is spent. */
export function sliceSpent(): boolean {
  return performance.now() - turnStarted >= SLICE_MS;
}

/**
 * Resolves at once while this turn's slice lasts; once it is spent, in the next turn. The first
 * caller to find it spent queues the start of the next turn's slice ahead of itself, so the
 * waiting callers share that slice in order instead of each taking a fresh one.
 */
export function pause(): Promise<void> | undefined {
  if (!sliceSpent()) return undefined;
  if (!turnMarked) {
    turnMarked = true;
    setImmediate(startTurn);
  }
  return nextTurn();
}

/** Items per sorted run and per merge step between pauses: each a fraction of a slice. */
const RUN = 2048;

/**
 * Sorts in slices: runs of RUN items sorted one at a time, then merged pairwise, pausing between
 * steps, so sorting a directory of 200,000 names never holds the loop for more than a slice.
 * Stable, like Array.prototype.sort.
 */
export async function sortInSlices<T>(items: T[], compare: (a: T, b: T) => number): Promise<T[]> {
  if (items.length <= RUN) return items.sort(compare);
  let runs: T[][] = [];
  for (let start = 0; start < items.length; start += RUN) {
    await pause();
    runs.push(items.slice(start, start + RUN).sort(compare));
  }
  while (runs.length > 1) {
    const merged: T[][] = [];
    for (let i = 0; i < runs.length; i += 2) {
      const left = runs[i] as T[];
      const right = runs[i + 1];
      merged.push(right === undefined ? left : await merge(left, right, compare));
    }
    runs = merged;
  }
  return runs[0] as T[];
}

async function merge<T>(left: T[], right: T[], compare: (a: T, b: T) => number): Promise<T[]> {
  const out: T[] = new Array(left.length + right.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < left.length && j < right.length) {
    if ((k & (RUN - 1)) === 0) await pause();
    // Ties take from the left: stable.
    out[k++] = compare(right[j] as T, left[i] as T) < 0 ? (right[j++] as T) : (left[i++] as T);
  }
  while (i < left.length) out[k++] = left[i++] as T;
  while (j < right.length) out[k++] = right[j++] as T;
  return out;
}
