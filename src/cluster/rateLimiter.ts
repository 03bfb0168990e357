/**
 * Per-principal request rate limiting. The in-memory bucket serves one process; replicas that must
 * share a budget implement this interface over their shared store.
 */
export interface RateLimiter {
  /**
   * Takes `count` tokens for `key` at once (one per JSON-RPC call of a message), or none; when too
   * few are left, says how long until enough will be.
   */
  take(
    key: string,
    perSecond: number,
    burst: number,
    count?: number,
  ): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Buckets idle this long are forgotten (they would be full again anyway). */
const IDLE_FORGET_MS = 10 * 60_000;

/** A token bucket per key: `burst` tokens, refilled continuously at `perSecond`. */
export class InMemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweepMs = 0;

  constructor(private readonly now: () => number = () => Date.now()) {}

  async take(
    key: string,
    perSecond: number,
    burst: number,
    count = 1,
  ): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: burst, updatedMs: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * perSecond);
    bucket.updatedMs = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= count) {
      bucket.tokens -= count;
      return { ok: true };
    }
    // More than the burst can never be had at once: the wait is for a full bucket.
    const wanted = Math.min(count, burst);
    return { ok: false, retryAfterMs: Math.ceil(((wanted - bucket.tokens) / perSecond) * 1000) };
  }

  private sweep(now: number): void {
    if (now - this.lastSweepMs < IDLE_FORGET_MS) return;
    this.lastSweepMs = now;
    for (const [key, bucket] of this.buckets) if (now - bucket.updatedMs > IDLE_FORGET_MS) this.buckets.delete(key);
  }
}
