import { performance } from 'node:perf_hooks';
import { setTimeout as pause } from 'node:timers/promises';
import { inspect } from 'node:util';

/**
 * Waiting in tests: always on a condition, never on a fixed time. A fixed sleep is either too
 * short on a loaded CI machine (a flake) or longer than needed everywhere else; polling the
 * condition itself is neither. `until` is the one place tests pause.
 */

/** Whatever `T` is once falsy values are ruled out: what `until` resolves with. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

export interface UntilOptions<T> {
  /** What is awaited, for the failure message ("the access log line of request 1f2e..."). */
  readonly what: string;
  /** Give up (reject with WaitTimeout) after this long; 10 s unless given. */
  readonly timeoutMs?: number;
  /**
   * Pause between two evaluations; 10 ms unless given. Longer only where a probe is costly (a
   * `docker inspect`, a PromQL query) or where the pace is itself what a test measures.
   */
  readonly intervalMs?: number;
  /**
   * Renders the state for the failure message; the last value seen (truncated util.inspect) unless
   * given. A probe that only says yes or no gets one to show what it looked at.
   */
  readonly describe?: (last: T | undefined) => string | Promise<string>;
}

/** The condition did not hold in time; `last` is what the probe returned last. */
export class WaitTimeout extends Error {
  override readonly name = 'WaitTimeout';

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly last: unknown,
    description: string,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${description}`);
  }
}

const MAX_DESCRIPTION = 2000;

function describeValue(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : inspect(value, { depth: 4, breakLength: Infinity });
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION)}... (${text.length} chars)` : text;
}

/**
 * Evaluates `probe` (sync or async) until it returns a truthy value, and resolves with that value.
 * Rejects with a WaitTimeout naming `what` and the last value seen once `timeoutMs` has passed (the
 * probe always gets one last evaluation after the deadline, so a slow machine cannot lose a race
 * against its own timer). An error thrown by the probe rejects at once: a probe throws for what
 * can never come right (the process it waits on exited, say).
 */
export async function until<T>(probe: () => T | Promise<T>, options: UntilOptions<T>): Promise<Truthy<T>> {
  const { what, timeoutMs = 10_000, intervalMs = 10 } = options;
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    const late = performance.now() >= deadline;
    last = await probe();
    if (last) return last as Truthy<T>;
    if (late) {
      const description = options.describe ? await options.describe(last) : describeValue(last);
      throw new WaitTimeout(what, timeoutMs, last, description);
    }
    await pause(Math.max(0, Math.min(intervalMs, deadline - performance.now())));
  }
}
