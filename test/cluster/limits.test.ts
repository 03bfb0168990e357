import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallQuota, LocalCallQuota } from '../../src/cluster/concurrency.js';
import { InMemoryRateLimiter, type RateLimiter } from '../../src/cluster/rateLimiter.js';
import { type SharedState, sharedState } from '../../src/cluster/shared.js';
import type { Config } from '../../src/config/schema.js';
import { DEFAULTS } from '../../src/config/schema.js';
import type { RedisSettings } from '../../src/config/types.js';
import { createLogger } from '../../src/ops/logger.js';
import { type RedisServer, redisSettings, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';
import { REPO } from '../helpers/workspace.js';

/**
 * One contract for each limit, run against the in-memory implementation (one replica) and the
 * Redis one (a real redis-server), then what only the shared one promises: replicas share the
 * budget, a dead replica's slots lapse with its lease, and an unreachable Redis falls back the way
 * the config says and recovers when Redis is back.
 */

let redis: RedisServer;
const opened: SharedState[] = [];
const logger = createLogger('silent');

interface Seen {
  commands: { name: string; outcome: string }[];
  fallbacks: { limit: string; mode: string }[];
}

const settings = (overrides: Partial<RedisSettings> = {}) => redisSettings(redis.url, overrides);

/** A replica's shared state over Redis, with what it reported. */
async function replica(
  redisSettings: RedisSettings,
  leaseMs: number = DEFAULTS.clusterLeaseMs,
  name = 'replica',
): Promise<SharedState & { seen: Seen }> {
  const seen: Seen = { commands: [], fallbacks: [] };
  const config = { cluster: { redis: redisSettings, leaseMs } } as unknown as Config;
  const state = await sharedState(config, {
    logger,
    replica: name,
    observer: {
      command: (commandName, outcome) => seen.commands.push({ name: commandName, outcome }),
      fallback: (limit, mode) => seen.fallbacks.push({ limit, mode }),
      traced: (_name, run) => run(),
    },
  });
  opened.push(state);
  await until(() => state.redisReady, { what: 'the replica to connect to redis' });
  return Object.assign(state, { seen });
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const state of opened) await state.close();
  await redis.close();
});

const implementations: [string, () => Promise<{ rate: RateLimiter; calls: CallQuota }>][] = [
  ['in memory', async () => ({ rate: new InMemoryRateLimiter(), calls: new LocalCallQuota() })],
  [
    'in Redis',
    async () => {
      const state = await replica(settings());
      return { rate: state.rateLimiter, calls: state.calls };
    },
  ],
];

describe.each(implementations)('the limits contract, %s', (_name, make) => {
  it('gives a principal its burst, then refuses with a time to come back', async () => {
    const { rate } = await make();
    for (let i = 0; i < 5; i++) expect(await rate.take('alice', 0.001, 5)).toEqual({ ok: true });
    const refused = await rate.take('alice', 0.001, 5);
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.retryAfterMs).toBeGreaterThan(0);
    // Another principal has a bucket of its own.
    expect(await rate.take('bob', 0.001, 5)).toEqual({ ok: true });
  });

  it('takes a batch whole or not at all', async () => {
    const { rate } = await make();
    expect(await rate.take('carol', 0.001, 10, 7)).toEqual({ ok: true });
    expect((await rate.take('carol', 0.001, 10, 4)).ok).toBe(false);
    // Nothing was taken by the refusal: the 3 left are still there.
    expect(await rate.take('carol', 0.001, 10, 3)).toEqual({ ok: true });
    expect((await rate.take('carol', 0.001, 10, 1)).ok).toBe(false);
  });

  it('refills at the configured rate', async () => {
    const { rate } = await make();
    expect(await rate.take('dave', 50, 1)).toEqual({ ok: true });
    expect((await rate.take('dave', 50, 1)).ok).toBe(false);
    await until(async () => (await rate.take('dave', 50, 1)).ok, { what: 'a token after 20 ms' });
  });

  it('admits a message by rate and slots in one step, all or none, the tokens spent either way', async () => {
    const { calls } = await make();
    const limits = { maxTotal: 100, maxPerKey: 2, count: 2, perSecond: 0.001, burst: 5 };
    const first = await calls.admit('grace', limits);
    expect(first.ok).toBe(true);
    // Slots full: refused as busy, and its two tokens are spent all the same.
    expect(await calls.admit('grace', limits)).toEqual({ ok: false, reason: 'concurrency' });
    if (first.ok) first.slots.release();
    // One token left, two asked: refused by the rate, with a time to come back.
    const limited = await calls.admit('grace', limits);
    expect(limited).toMatchObject({ ok: false, reason: 'rate' });
    expect(!limited.ok && limited.reason === 'rate' && limited.retryAfterMs).toBeGreaterThan(0);
    const single = await calls.admit('grace', { ...limits, count: 1 });
    expect(single.ok).toBe(true);
    // The process total binds too.
    expect(await calls.admit('hank', { ...limits, maxTotal: 1, count: 1 })).toEqual({
      ok: false,
      reason: 'concurrency',
    });
  });

  it('holds calls in progress per principal and in all, releases each slot once', async () => {
    const { calls } = await make();
    const first = await calls.acquire('erin', 100, 3, 2);
    expect(first).toBeTruthy();
    expect(await calls.acquire('erin', 100, 3, 2)).toBeUndefined();
    const third = await calls.acquire('erin', 100, 3, 1);
    expect(third).toBeTruthy();
    expect(await calls.acquire('erin', 100, 3, 1)).toBeUndefined();
    (first as { release(): void }).release();
    (first as { release(): void }).release();
    await until(
      async () => {
        const again = await calls.acquire('erin', 100, 3, 2);
        if (again && again !== 'unavailable') again.release();
        return again;
      },
      { what: 'the released slots' },
    );
    // Only two were freed, however often release was called.
    const two = await calls.acquire('erin', 100, 3, 2);
    expect(two).toBeTruthy();
    expect(await calls.acquire('erin', 100, 3, 1)).toBeUndefined();
    // The process total binds across principals.
    expect(await calls.acquire('frank', 3, 10, 1)).toBeUndefined();
  });
});

describe('limits shared through Redis', () => {
  it('give a principal one budget across replicas, and keep no principal name in Redis', async () => {
    const shared = settings();
    const replicas = [
      await replica(shared, undefined, 'a'),
      await replica(shared, undefined, 'b'),
      await replica(shared, undefined, 'c'),
    ];
    let allowed = 0;
    for (let i = 0; i < 30; i++) {
      const taken = await (replicas[i % 3] as SharedState).rateLimiter.take('principal-grace', 0.001, 12);
      if (taken.ok) allowed += 1;
    }
    expect(allowed).toBe(12);
    const keys = await redis.cli('--scan', '--pattern', `${shared.keyPrefix}*`);
    expect(keys).not.toBe('');
    expect(keys).not.toContain('principal-grace');
    for (const key of keys.split('\n')) expect(key.startsWith(shared.keyPrefix)).toBe(true);

    const held = [];
    for (let i = 0; i < 6; i++)
      held.push(await (replicas[i % 3] as SharedState).calls.acquire('principal-grace', 100, 4, 1));
    expect(held.filter(Boolean)).toHaveLength(4);
  });

  it('free the slots of a replica that died within the lease, and keep a live replica’s slots past it', async () => {
    const shared = settings();
    const leaseMs = 1000;
    const dying = await replica(shared, leaseMs, 'dying');
    const living = await replica(shared, leaseMs, 'living');
    const survivor = await replica(shared, leaseMs, 'other');
    expect(await dying.calls.acquire('heidi', 100, 2, 1)).toBeTruthy();
    expect(await living.calls.acquire('heidi', 100, 2, 1)).toBeTruthy();
    expect(await survivor.calls.acquire('heidi', 100, 2, 1)).toBeUndefined();
    // The dying replica stops renewing and loses its connection without releasing anything.
    await dying.close();
    const renewedBefore = living.seen.commands.filter((c) => c.name === 'mcpdQuotaRenew').length;
    const freed = await until(
      async () => {
        const slot = await survivor.calls.acquire('heidi', 100, 2, 1);
        return slot === 'unavailable' ? undefined : slot;
      },
      { what: 'the dead replica’s slot to lapse', timeoutMs: 10_000 },
    );
    expect(freed).toBeTruthy();
    // The living replica renewed its slot meanwhile, so it still counts: the quota is full.
    expect(
      living.seen.commands.filter((c) => c.name === 'mcpdQuotaRenew' && c.outcome === 'ok').length,
    ).toBeGreaterThan(renewedBefore);
    expect(await survivor.calls.acquire('heidi', 100, 2, 1)).toBeUndefined();
  });

  it('fall back as configured while Redis is down, count it, and share again once it is back', async () => {
    const local = await replica(settings({ onUnavailable: 'local' }), undefined, 'local');
    const closed = await replica(settings({ onUnavailable: 'closed', required: true }), undefined, 'closed');
    expect(closed.notReadyReason()).toBeNull();
    await redis.stop('SIGKILL');
    try {
      await until(() => !local.redisReady && !closed.redisReady, { what: 'the replicas to see redis gone' });
      expect(closed.notReadyReason()).toMatch(/redis/);
      expect(local.notReadyReason()).toBeNull();
      // local: this replica's own bucket and count still bind.
      let allowed = 0;
      for (let i = 0; i < 8; i++) if ((await local.rateLimiter.take('ivan', 0.001, 5)).ok) allowed += 1;
      expect(allowed).toBe(5);
      expect(await local.calls.acquire('ivan', 100, 1, 1)).toBeTruthy();
      expect(await local.calls.acquire('ivan', 100, 1, 1)).toBeUndefined();
      // Admitting a message falls back the same way: this replica's bucket (now empty), its count.
      expect(
        await local.calls.admit('ivan', { maxTotal: 100, maxPerKey: 5, count: 1, perSecond: 0.001, burst: 5 }),
      ).toMatchObject({
        ok: false,
        reason: 'rate',
      });
      expect(
        (await local.calls.admit('ivy', { maxTotal: 100, maxPerKey: 5, count: 1, perSecond: 1, burst: 5 })).ok,
      ).toBe(true);
      expect(local.seen.fallbacks).toContainEqual({ limit: 'rate', mode: 'local' });
      expect(local.seen.fallbacks).toContainEqual({ limit: 'concurrency', mode: 'local' });
      // closed: refused as unavailable, never allowed unchecked.
      const refused = await closed.rateLimiter.take('ivan', 1000, 1000);
      expect(refused).toMatchObject({ ok: false, unavailable: true });
      expect(await closed.calls.acquire('ivan', 100, 100, 1)).toBe('unavailable');
      expect(
        await closed.calls.admit('ivan', { maxTotal: 100, maxPerKey: 5, count: 1, perSecond: 1, burst: 5 }),
      ).toEqual({
        ok: false,
        reason: 'unavailable',
      });
      expect(closed.seen.fallbacks).toContainEqual({ limit: 'rate', mode: 'closed' });
    } finally {
      await redis.start();
    }
    await until(() => local.redisReady && closed.redisReady, {
      what: 'both replicas to reconnect (backoff at most 2 s)',
      timeoutMs: 15_000,
    });
    expect(closed.notReadyReason()).toBeNull();
    expect(await closed.rateLimiter.take('judy', 0.001, 2)).toEqual({ ok: true });
    const commandsBefore = local.seen.commands.length;
    expect(await local.rateLimiter.take('judy-2', 0.001, 2)).toEqual({ ok: true });
    expect(local.seen.commands.slice(commandsBefore)).toContainEqual({ name: 'mcpdRate', outcome: 'ok' });
  });

  it('work as the ACL user the deployment guide creates, and not with a wrong password', async () => {
    const guide = await readFile(join(REPO, 'docs/deploying.md'), 'utf8');
    const rule = guide.split('\n').find((line) => line.startsWith('ACL SETUSER mcpd '));
    expect(rule).toBeDefined();
    const prefix = 'acl:';
    const args = (rule as string)
      .replace('>PASSWORD', '>s3cret-acl')
      .replace('~mcpd:*', `~${prefix}*`)
      .replace('&mcpd:*', `&${prefix}*`)
      .split(' ')
      .slice(3);
    expect(await redis.cli('ACL', 'SETUSER', 'mcpd', 'reset', ...args)).toBe('OK');
    const user = await replica(settings({ username: 'mcpd', password: 's3cret-acl', keyPrefix: prefix }), 1000);
    expect(await user.rateLimiter.take('kim', 0.001, 3)).toEqual({ ok: true });
    const slot = await user.calls.acquire('kim', 100, 2, 1);
    expect(slot).toBeTruthy();
    await until(() => user.seen.commands.some((c) => c.name === 'mcpdQuotaRenew'), { what: 'a lease renewal' });
    (slot as { release(): void }).release();
    await until(() => user.seen.commands.some((c) => c.name === 'zrem'), { what: 'the release' });
    const admitted = await user.calls.admit('kim', { maxTotal: 100, maxPerKey: 2, count: 1, perSecond: 1, burst: 3 });
    expect(admitted.ok).toBe(true);
    if (admitted.ok) admitted.slots.release();
    // Tasks and changes too: every script and command the replica uses.
    await user.tasks.create({ taskId: 'acl-task', owner: 'kim', tool: 't', ttlMs: 60_000, leaseMs: 60_000 });
    await user.tasks.renew([{ taskId: 'acl-task', statusMessage: 'half' }], 60_000);
    await user.tasks.requestCancel('acl-task');
    await user.tasks.finish('acl-task', { status: 'completed', result: { content: [] } });
    expect(await user.tasks.get('acl-task')).toMatchObject({ status: 'completed', result: { content: [] } });
    const heard: string[] = [];
    const stopHearing = user.changes.subscribe((change) => heard.push(change.relPath));
    await until(
      () => {
        user.changes.publish({ root: 'r', relPath: 'acl.md', kind: 'changed', isDirectory: false, version: '1:1' });
        return heard.includes('acl.md');
      },
      { what: 'a change through the ACL user', intervalMs: 50 },
    );
    stopHearing();
    expect(user.seen.commands.filter((c) => c.outcome !== 'ok')).toEqual([]);
    expect(user.seen.fallbacks).toEqual([]);

    const seen: Seen = { commands: [], fallbacks: [] };
    const wrong = await sharedState(
      {
        cluster: { redis: settings({ username: 'mcpd', password: 'wrong', keyPrefix: prefix }), leaseMs: 1000 },
      } as unknown as Config,
      {
        logger,
        replica: 'wrong',
        observer: {
          command: (name, outcome) => seen.commands.push({ name, outcome }),
          fallback: (limit, mode) => seen.fallbacks.push({ limit, mode }),
          traced: (_name, run) => run(),
        },
      },
    );
    opened.push(wrong);
    expect(wrong.redisReady).toBe(false);
    expect((await wrong.rateLimiter.take('kim', 0.001, 3)).ok).toBe(true);
    expect(seen.fallbacks).toEqual([{ limit: 'rate', mode: 'local' }]);
  });
});
