/**
 * Per-principal request rate limiting. The in-memory bucket serves one process; replicas that must
 * share a budget implement this interface over their shared store.
 */
export interface RateLimiter {
  /** Takes one token for `key`; when none is left, says how long until one will be. */
  take(key: string, perSecond: number, burst: number): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
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
  ): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: burst, updatedMs: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * perSecond);
    bucket.updatedMs = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - bucket.tokens) / perSecond) * 1000) };
  }

  private sweep(now: number): void {
    if (now - this.lastSweepMs < IDLE_FORGET_MS) return;
    this.lastSweepMs = now;
    for (const [key, bucket] of this.buckets) if (now - bucket.updatedMs > IDLE_FORGET_MS) this.buckets.delete(key);
  }
}
