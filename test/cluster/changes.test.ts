import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeFeed, type FeedEvent } from '../../src/access/changes.js';
import { type BusChange, type ChangeBus, InMemoryChangeBus } from '../../src/cluster/changeBus.js';
import { type SharedState, sharedState } from '../../src/cluster/shared.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/ops/logger.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import { policyOver } from '../helpers/policy.js';
import { type RedisServer, redisSettings, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';
import { tempDir } from '../helpers/workspace.js';

/**
 * The change bus: one contract for the in-memory bus and the Redis one (a real redis-server), and
 * the feed on top of it, which tells each listener of a change once however many reporters saw it,
 * and only of what its own policy lets it see.
 */

let redis: RedisServer;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;
const opened: SharedState[] = [];
const fallbacks: string[] = [];

const change = (relPath: string, version: string, kind: BusChange['kind'] = 'changed'): BusChange => ({
  root: 'r',
  relPath,
  kind,
  isDirectory: false,
  version,
});

async function redisReplica(prefix: string): Promise<SharedState> {
  const settings = redisSettings(redis.url, { keyPrefix: prefix });
  const state = await sharedState({ cluster: { redis: settings, leaseMs: 15_000 } } as unknown as Config, {
    logger: createLogger('silent'),
    replica: prefix,
    observer: {
      command: () => {},
      fallback: (thing) => fallbacks.push(thing),
      traced: (_name, run) => run(),
    },
  });
  opened.push(state);
  await until(() => state.redisReady, { what: 'redis connected' });
  return state;
}

beforeAll(async () => {
  redis = await startRedis();
  let dir: string;
  ({ dir, cleanup } = await tempDir('mcpd-changes-'));
  policy = await policyOver(dir);
});

afterAll(async () => {
  for (const state of opened) await state.close();
  await redis.close();
  await cleanup();
});

/**
 * Subscribes, collecting into `heard`, and waits until a probe published on `bus` comes back (the
 * subscription is live). Probes are never collected.
 */
async function listening(bus: ChangeBus, heard: BusChange[]): Promise<() => void> {
  let live = false;
  const stop = bus.subscribe((c) => {
    if (c.relPath.startsWith('probe-')) live = true;
    else heard.push(c);
  });
  await until(
    () => {
      bus.publish(change(`probe-${Math.random()}`, 'v'));
      return live;
    },
    { what: 'the subscription to be live', intervalMs: 50 },
  );
  return stop;
}

describe.each([
  ['in memory', async () => [new InMemoryChangeBus()] as ChangeBus[]],
  [
    'in Redis',
    async () => {
      const prefix = `bus${Math.random().toString(36).slice(2, 7)}:`;
      return [(await redisReplica(prefix)).changes, (await redisReplica(prefix)).changes];
    },
  ],
] as const)('the change bus contract, %s', (_name, make) => {
  it('delivers a published change once to every subscriber, in order, and nothing after unsubscribing', async () => {
    const buses = await make();
    const publisher = buses.at(-1) as ChangeBus;
    const heard = buses.map(() => [] as BusChange[]);
    const stops = [];
    for (const [i, bus] of buses.entries()) stops.push(await listening(bus, heard[i] as BusChange[]));
    for (const version of ['1', '2', '3']) publisher.publish(change('a.md', version));
    publisher.publish(change('end.md', 'x'));
    for (const [i] of buses.entries()) {
      await until(() => heard[i]?.some((c) => c.relPath === 'end.md'), { what: `subscriber ${i} to hear the end` });
      expect(heard[i]?.map((c) => `${c.relPath}@${c.version}`)).toEqual(['a.md@1', 'a.md@2', 'a.md@3', 'end.md@x']);
    }
    for (const stop of stops) stop();
    for (const list of heard) list.splice(0);
    publisher.publish(change('after.md', 'y'));
    // Something later that a fresh subscriber does hear: by then the earlier one would have arrived.
    const late: BusChange[] = [];
    const stop = await listening(publisher, late);
    stop();
    expect(heard.flat()).toEqual([]);
  });
});

describe('the Redis change bus', () => {
  it('ignores what is not a change on its channel, and delivers locally while Redis is down', async () => {
    const prefix = 'odd:';
    const state = await redisReplica(prefix);
    const heard: BusChange[] = [];
    const stop = await listening(state.changes, heard);
    await redis.cli('PUBLISH', `${prefix}changes`, 'not json');
    await redis.cli('PUBLISH', `${prefix}changes`, JSON.stringify({ root: 'r', relPath: 'x', kind: 'exploded' }));
    state.changes.publish(change('marker.md', 'm'));
    await until(() => heard.some((c) => c.relPath === 'marker.md'), { what: 'the marker' });
    expect(heard.map((c) => c.relPath)).toEqual(['marker.md']);

    await redis.stop('SIGKILL');
    try {
      await until(() => !state.redisReady, { what: 'redis gone' });
      state.changes.publish(change('while-down.md', 'd'));
      await until(() => heard.some((c) => c.relPath === 'while-down.md'), { what: 'local delivery' });
      expect(fallbacks).toContain('changes');
    } finally {
      await redis.start();
    }
    await until(() => state.redisReady, { what: 'redis back', timeoutMs: 15_000 });
    // The subscription came back with the connection.
    await until(
      () => {
        state.changes.publish(change('after-restart.md', 'r'));
        return heard.some((c) => c.relPath === 'after-restart.md');
      },
      { what: 'a change through Redis after its restart', intervalMs: 100, timeoutMs: 15_000 },
    );
    stop();
  });
});

describe('task signals over Redis', () => {
  it('tell every replica that a task changed, ignoring what is not a signal on their channel', async () => {
    const prefix = `signals${Math.random().toString(36).slice(2, 7)}:`;
    const [a, b] = [await redisReplica(prefix), await redisReplica(prefix)];
    const heard: string[] = [];
    const stop = b.taskSignals.subscribe(({ taskId }) => {
      if (taskId !== 'probe') heard.push(taskId);
      else probed = true;
    });
    let probed = false;
    await until(
      () => {
        a.taskSignals.publish({ taskId: 'probe' });
        return probed;
      },
      { what: 'the subscription to be live', intervalMs: 50 },
    );
    await redis.cli('PUBLISH', `${prefix}tasks`, 'not json');
    await redis.cli('PUBLISH', `${prefix}tasks`, JSON.stringify({ taskId: 42 }));
    a.taskSignals.publish({ taskId: 't-1' });
    await until(() => heard.includes('t-1'), { what: 'the signal from the other replica' });
    expect(heard).toEqual(['t-1']);
    stop();
  });
});

describe('the change feed', () => {
  function feedOn(bus: ChangeBus, clock: { now: number }) {
    const feed = new ChangeFeed(
      null,
      () => policy,
      0,
      bus,
      () => clock.now,
    );
    const events: FeedEvent[] = [];
    feed.subscribe((event) => events.push(event));
    return { feed, events };
  }

  it('tells one change once, however many report it, and two changes twice', async () => {
    const clock = { now: 0 };
    const { feed, events } = feedOn(new InMemoryChangeBus(), clock);
    feed.changed(change('doc.md', '10:1000'));
    clock.now = 200;
    // The watcher's report of the same write, a debounce later.
    feed.changed(change('doc.md', '10:1000'));
    expect(events.filter((e) => e.kind === 'resource_updated')).toHaveLength(1);
    // Another write: another version, told.
    feed.changed(change('doc.md', '12:1100'));
    expect(events.filter((e) => e.kind === 'resource_updated')).toHaveLength(2);
    // A version nobody could know (a move) is always told.
    feed.changed(change('doc.md', ''));
    feed.changed(change('doc.md', ''));
    expect(events.filter((e) => e.kind === 'resource_updated')).toHaveLength(4);
    // The same version long after is a new change (the window is short).
    clock.now = 60_000;
    feed.changed(change('doc.md', '12:1100'));
    expect(events.filter((e) => e.kind === 'resource_updated')).toHaveLength(5);
    // Gone, back, gone again: each told.
    feed.changed(change('doc.md', 'gone', 'deleted'));
    feed.changed(change('doc.md', '1:1', 'created'));
    feed.changed(change('doc.md', 'gone', 'deleted'));
    expect(events.filter((e) => e.kind === 'resource_updated')).toHaveLength(7);
    feed.close();
  });

  it('judges what it hears by its own policy: an excluded file is never told', async () => {
    const clock = { now: 0 };
    const { feed, events } = feedOn(new InMemoryChangeBus(), clock);
    feed.changed(change('.env', '1:1'));
    feed.changed(change('.mcpd-tmp-123', '1:1'));
    feed.changed({ ...change('x.md', '1:1'), root: 'no-such-root' });
    feed.changed(change('visible.md', '1:1'));
    expect(events).toEqual([{ kind: 'resource_updated', uri: expect.stringMatching(/visible\.md$/), root: 'r' }]);
    feed.close();
  });
});
