import { createHash } from 'node:crypto';
import type { SharedRedis } from './redis.js';

/**
 * Per-principal request rate limiting. The in-memory bucket serves one process; replicas that must
 * share a budget implement this interface over their shared store.
 */
export interface RateLimiter {
  /**
   * Takes `count` tokens for `key` at once (one per JSON-RPC call of a message), or none; when too
   * few are left, says how long until enough will be.
   */
  take(key: string, perSecond: number, burst: number, count?: number): Promise<RateDecision>;
}

/** Taken, or not (and when to come back); `unavailable` when the shared bucket cannot be reached and the config says refuse. */
export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number; unavailable?: true };

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

/**
 * The token bucket in Redis, one hash per principal, taken atomically by a script that reads
 * Redis's own clock (replicas' clocks may disagree; the store's cannot). This Lua takes ARGV[3]
 * tokens from the bucket KEYS[1] (ARGV[1] a second, ARGV[2] at most), leaving `ok` (1 or 0),
 * `wait` (ms until enough) and `now` (ms) for the script that includes it.
 */
export const TAKE_TOKENS_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
  at = now
end
local ok = 0
local wait = 0
if tokens >= count then
  tokens = tokens - count
  ok = 1
else
  wait = math.ceil((math.min(count, burst) - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
`;

/** Takes a principal's tokens: what a listen stream needs (a call takes its slot with them, ADMIT_SCRIPT). */
export const RATE_SCRIPT = `${TAKE_TOKENS_LUA}
return { ok, wait }
`;

/**
 * Redis keys name a principal by a hash: bounded in length, and no principal name stored in Redis.
 * The hash is the key's hash tag, so a principal's keys share a Redis Cluster slot and one script
 * can take its rate token and its call slots together.
 */
export function principalKeys(principal: string): { readonly rate: string; readonly calls: string } {
  const tag = createHash('sha256').update(principal).digest('base64url').slice(0, 22);
  return { rate: `rate:{${tag}}`, calls: `calls:{${tag}}` };
}

/**
 * A principal's bucket shared by every replica through Redis. While Redis cannot be reached the
 * configured fallback decides: this replica's own bucket (`local`), or a refusal (`closed`).
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly local = new InMemoryRateLimiter();

  constructor(private readonly redis: SharedRedis) {}

  async take(key: string, perSecond: number, burst: number, count = 1): Promise<RateDecision> {
    let answer: unknown;
    try {
      answer = await this.redis.script('mcpdRate', principalKeys(key).rate, perSecond, burst, count);
    } catch {
      this.redis.fellBack('rate');
      if (this.redis.settings.onUnavailable === 'closed') return { ok: false, retryAfterMs: 1000, unavailable: true };
      return this.local.take(key, perSecond, burst, count);
    }
    const [ok, waitMs] = answer as [number, number];
    return ok === 1 ? { ok: true } : { ok: false, retryAfterMs: waitMs };
  }
}
