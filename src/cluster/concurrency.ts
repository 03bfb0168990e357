import { InMemoryRateLimiter, principalKeys, type RateLimiter, TAKE_TOKENS_LUA } from './rateLimiter.js';
import type { SharedRedis } from './redis.js';

/** Calls in progress, per process and per principal: slots are taken on entry, released on close. */
export class ConcurrencyLimiter {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  /** `count` slots at once (one per JSON-RPC call), or undefined when either bound would be passed. */
  acquire(key: string, maxTotal: number, maxPerKey: number, count = 1): { release(): void } | undefined {
    const current = this.perKey.get(key) ?? 0;
    if (this.total + count > maxTotal || current + count > maxPerKey) return undefined;
    this.total += count;
    this.perKey.set(key, current + count);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= count;
        const left = (this.perKey.get(key) ?? count) - count;
        if (left <= 0) this.perKey.delete(key);
        else this.perKey.set(key, left);
      },
    };
  }

  /** Slots held in all, and by `key`. */
  held(key?: string): number {
    return key === undefined ? this.total : (this.perKey.get(key) ?? 0);
  }

  get inProgress(): number {
    return this.total;
  }
}

/** Slots held for a call (or a batch of calls); releasing twice is nothing. */
export interface Slots {
  release(): void;
}

/**
 * Calls in progress: at most `maxTotal` in this process, at most `maxPerKey` for one principal
 * (in the process, or across replicas when shared). Undefined when either would be passed;
 * `unavailable` when the shared count cannot be reached and the config says refuse.
 */
export interface CallQuota {
  acquire(key: string, maxTotal: number, maxPerKey: number, count: number): Promise<Slots | undefined | 'unavailable'>;
  /**
   * A message's rate tokens, then its call slots, in one step (one Redis round trip when shared):
   * `count` of each, all or none. A refusal by the slots has already spent the tokens, as taking
   * them one after the other would.
   */
  admit(key: string, limits: AdmitLimits): Promise<Admission>;
}

export interface AdmitLimits {
  readonly maxTotal: number;
  readonly maxPerKey: number;
  readonly count: number;
  readonly perSecond: number;
  readonly burst: number;
}

/** A message admitted with its slots, or why not. */
export type Admission =
  | { readonly ok: true; readonly slots: Slots }
  | { readonly ok: false; readonly reason: 'rate'; readonly retryAfterMs: number }
  | { readonly ok: false; readonly reason: 'concurrency' | 'unavailable' };

const BUSY: Admission = { ok: false, reason: 'concurrency' };
const UNAVAILABLE: Admission = { ok: false, reason: 'unavailable' };

/** One process's quota: both bounds counted here, the rate taken from `rates` (this process's buckets). */
export class LocalCallQuota implements CallQuota {
  constructor(
    private readonly rates: RateLimiter = new InMemoryRateLimiter(),
    private readonly limiter: ConcurrencyLimiter = new ConcurrencyLimiter(),
  ) {}

  async acquire(key: string, maxTotal: number, maxPerKey: number, count: number): Promise<Slots | undefined> {
    return this.limiter.acquire(key, maxTotal, maxPerKey, count);
  }

  async admit(key: string, limits: AdmitLimits): Promise<Admission> {
    const rate = await this.rates.take(key, limits.perSecond, limits.burst, limits.count);
    if (!rate.ok)
      return rate.unavailable ? UNAVAILABLE : { ok: false, reason: 'rate', retryAfterMs: rate.retryAfterMs };
    const slots = this.limiter.acquire(key, limits.maxTotal, limits.maxPerKey, limits.count);
    return slots ? { ok: true, slots } : BUSY;
  }
}

/** The rate bucket and the slot set of one principal in one script: one round trip to admit a message. */
export const ADMIT_SCRIPT = {
  keys: 2,
  lua: `${TAKE_TOKENS_LUA}
if ok == 0 then
  return { 0, wait, 0 }
end
local max = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) + (#ARGV - 5) > max then
  return { 1, 0, 0 }
end
for i = 6, #ARGV do
  redis.call('ZADD', KEYS[2], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], lease)
return { 1, 0, 1 }
`,
} as const;

/**
 * A principal's slots as members of one sorted set in Redis, scored by when their lease ends.
 * Taking slots first drops expired ones: a replica that died holding slots frees them within a
 * lease. The script reads Redis's clock, so replicas' clocks do not matter.
 */
export const QUOTA_ACQUIRE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) + (#ARGV - 2) > max then
  return 0
end
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
return 1
`;

/** Extends the leases of slots still held (never re-adds one that was released or expired). */
export const QUOTA_RENEW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
`;

interface Held {
  readonly key: string;
  readonly members: readonly string[];
}

/**
 * Per-principal slots shared by every replica through Redis; the process total stays local (it
 * protects this process). Slots held are renewed every third of a lease while their calls run.
 */
export class RedisCallQuota implements CallQuota {
  private readonly held = new Map<number, Held>();
  private nextId = 0;
  private renewing: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: SharedRedis,
    private readonly replica: string,
    private readonly leaseMs: number,
    /** The shared buckets, which fall back to this replica's own while Redis is away. */
    private readonly rates: RateLimiter,
    private readonly local: ConcurrencyLimiter = new ConcurrencyLimiter(),
  ) {}

  async admit(key: string, limits: AdmitLimits): Promise<Admission> {
    const { maxTotal, maxPerKey, count } = limits;
    const slots = this.local.acquire(key, maxTotal, Number.POSITIVE_INFINITY, count);
    if (!slots) return BUSY;
    const id = this.nextId++;
    const members = Array.from({ length: count }, (_, i) => `${this.replica}:${id}:${i}`);
    // One hash of the principal names both keys (a call's path: it is not computed twice).
    const { rate, calls } = principalKeys(key);
    let answer: unknown;
    try {
      answer = await this.redis.script(
        'mcpdAdmit',
        [rate, calls],
        limits.perSecond,
        limits.burst,
        count,
        maxPerKey,
        this.leaseMs,
        ...members,
      );
    } catch {
      slots.release();
      return this.admitWithoutRedis(key, limits);
    }
    const [rateOk, waitMs, slotsOk] = answer as [number, number, number];
    if (rateOk !== 1 || slotsOk !== 1) {
      slots.release();
      return rateOk !== 1 ? { ok: false, reason: 'rate', retryAfterMs: waitMs } : BUSY;
    }
    return { ok: true, slots: this.shared(id, calls, members, slots) };
  }

  /** Redis unreachable: the rate from the buckets' fallback, the slots as `acquire` falls back. */
  private async admitWithoutRedis(key: string, limits: AdmitLimits): Promise<Admission> {
    const rate = await this.rates.take(key, limits.perSecond, limits.burst, limits.count);
    if (!rate.ok)
      return rate.unavailable ? UNAVAILABLE : { ok: false, reason: 'rate', retryAfterMs: rate.retryAfterMs };
    const slots = await this.acquire(key, limits.maxTotal, limits.maxPerKey, limits.count);
    if (slots === 'unavailable') return UNAVAILABLE;
    return slots ? { ok: true, slots } : BUSY;
  }

  async acquire(
    key: string,
    maxTotal: number,
    maxPerKey: number,
    count: number,
  ): Promise<Slots | undefined | 'unavailable'> {
    const slots = this.local.acquire(key, maxTotal, Number.POSITIVE_INFINITY, count);
    if (!slots) return undefined;
    const id = this.nextId++;
    const members = Array.from({ length: count }, (_, i) => `${this.replica}:${id}:${i}`);
    const redisKey = principalKeys(key).calls;
    let taken: unknown;
    try {
      taken = await this.redis.script('mcpdQuotaAcquire', redisKey, maxPerKey, this.leaseMs, ...members);
    } catch {
      this.redis.fellBack('concurrency');
      if (this.redis.settings.onUnavailable === 'closed' || this.local.held(key) > maxPerKey) {
        slots.release();
        return this.redis.settings.onUnavailable === 'closed' ? 'unavailable' : undefined;
      }
      return slots;
    }
    if (taken !== 1) {
      slots.release();
      return undefined;
    }
    return this.shared(id, redisKey, members, slots);
  }

  /** Slots taken in Redis (and locally): renewed while held, given back once. */
  private shared(id: number, redisKey: string, members: readonly string[], slots: Slots): Slots {
    this.held.set(id, { key: redisKey, members });
    this.keepRenewing();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        slots.release();
        this.held.delete(id);
        // Unreachable Redis: the slots lapse with their lease instead.
        this.redis.zrem(redisKey, members).catch(() => {});
      },
    };
  }

  /** Stops renewing; slots still held lapse within a lease. */
  close(): void {
    clearInterval(this.renewing);
    this.renewing = undefined;
  }

  private keepRenewing(): void {
    if (this.renewing) return;
    this.renewing = setInterval(() => this.renew(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.renewing.unref();
  }

  private renew(): void {
    if (this.held.size === 0) {
      this.close();
      return;
    }
    const byKey = new Map<string, string[]>();
    for (const { key, members } of this.held.values()) {
      const list = byKey.get(key) ?? [];
      list.push(...members);
      byKey.set(key, list);
    }
    for (const [key, members] of byKey) {
      this.redis.script('mcpdQuotaRenew', key, this.leaseMs, ...members).catch(() => {});
    }
  }
}
