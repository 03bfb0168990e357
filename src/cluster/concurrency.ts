import { principalKey } from './rateLimiter.js';
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
}

/** One process's quota: both bounds counted here. */
export class LocalCallQuota implements CallQuota {
  constructor(private readonly limiter: ConcurrencyLimiter = new ConcurrencyLimiter()) {}

  async acquire(key: string, maxTotal: number, maxPerKey: number, count: number): Promise<Slots | undefined> {
    return this.limiter.acquire(key, maxTotal, maxPerKey, count);
  }
}

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
    private readonly local: ConcurrencyLimiter = new ConcurrencyLimiter(),
  ) {}

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
    const redisKey = principalKey('calls', key);
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
