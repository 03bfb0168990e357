import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Three real `mcpd serve` processes and one real redis-server, on loopback: what the limits
 * promise a principal holds across the replicas, not per replica, and a replica that requires
 * Redis says so on /ready.
 */

const BURST = 60;
const PER_SECOND = 2;

let demo: Awaited<ReturnType<typeof demoCopy>>;
let redis: RedisServer;
const replicas: ServingProcess[] = [];
const audits: string[] = [];
/** A fourth replica that watches no file: whatever it tells its listeners came over the bus. */
let blind: ServingProcess | undefined;

function clusterYaml(url: string, extra = ''): string {
  return [
    'limits:',
    `  rateLimit: { perSecond: ${PER_SECOND}, burst: ${BURST} }`,
    '  maxConcurrentPerPrincipal: 4',
    'cluster:',
    '  leaseMs: 2000',
    `  redis: { url: "${url}", keyPrefix: "replicas:"${extra} }`,
    '',
  ].join('\n');
}

beforeAll(async () => {
  demo = await demoCopy();
  redis = await startRedis();
  const config = await demo.configWith('cluster.yaml', clusterYaml(redis.url));
  for (let i = 0; i < 3; i++) {
    const audit = `${demo.dir}/audit-${i}.log`;
    audits.push(audit);
    replicas.push(await serveMcpd(['--config', config, '--port', '0', '--audit-file', audit]));
  }
  const unwatched = await demo.configWith('blind.yaml', `${clusterYaml(redis.url)}resources: { watch: false }\n`);
  blind = await serveMcpd(['--config', unwatched, '--port', '0']);
});

afterAll(async () => {
  for (const replica of replicas) await replica.stop();
  await blind?.stop();
  await redis?.close();
  await demo?.cleanup();
});

describe('three replicas sharing one Redis', () => {
  it('serve the SDK client through any replica', async () => {
    for (const replica of replicas) {
      const client = await modernHttpClient(replica.url, 'replica-sdk');
      const listed = await client.listTools();
      expect(listed.tools.length).toBeGreaterThan(10);
      await client.close();
    }
  });

  it('hold a principal to one rate limit across them (within 10%), and each serves its share', async () => {
    // A full bucket to start from, whatever earlier tests took from it.
    await redis.cli('FLUSHALL');
    const started = performance.now();
    const statuses: number[][] = [[], [], []];
    // Four calls at a time, round-robin over the replicas: within the concurrency quota.
    let next = 0;
    const total = 150;
    const worker = async () => {
      while (next < total) {
        const index = next++;
        const replica = index % 3;
        const response = await postModern(
          (replicas[replica] as ServingProcess).url,
          'tools/call',
          {
            name: 'list_roots',
            arguments: {},
          },
          { id: index, client: 'rate-probe' },
        );
        await response.arrayBuffer();
        (statuses[replica] as number[]).push(response.status);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const elapsedSec = (performance.now() - started) / 1000;
    const allowed = statuses.flat().filter((status) => status === 200).length;
    const limited = statuses.flat().filter((status) => status === 429).length;
    expect(allowed + limited).toBe(total);
    // The bucket: BURST at once, PER_SECOND more each second. Per replica it would be three times that.
    const budget = BURST + PER_SECOND * elapsedSec;
    expect(allowed).toBeGreaterThanOrEqual(BURST);
    expect(allowed).toBeLessThanOrEqual(Math.ceil(budget * 1.1));
    for (const served of statuses) expect(served.filter((status) => status === 200).length).toBeGreaterThan(10);

    // Each refusal is audited on the replica that refused it, with the shared rule.
    const refusals = (await Promise.all(audits.map(readAudit))).flat().filter((r) => r.rule === 'limit:rate');
    expect(refusals.length).toBe(limited);

    // And each replica's metrics show the Redis calls it made.
    for (const replica of replicas) {
      const metrics = await (await fetch(replica.url.replace(/\/mcp$/, '/metrics'))).text();
      // One round trip admits a call (its rate token and its slot), one gives the slot back.
      expect(metrics).toMatch(/mcpd_redis_command_duration_seconds_count\{command="mcpdAdmit",outcome="ok"\} [1-9]/);
      expect(metrics).toMatch(/mcpd_redis_command_duration_seconds_count\{command="zrem",outcome="ok"\} [1-9]/);
    }
  });
});

/**
 * Listens on `listener` while a file is changed once through `writer`, and says how many updates
 * of it arrived and how many list changes. A marker file written through the same replica is
 * heard first (so the subscription is live before the change) and last (so anything told twice
 * has arrived by then: one stream's events arrive in order). With `watched`, a file appended to on
 * disk, which only the listener's own watcher can report, is heard first too: the watcher is
 * running, so it sees every write on the shared volume as well.
 */
async function heardOnce(
  listener: ServingProcess,
  writer: ServingProcess,
  name: string,
  watched: boolean,
): Promise<{ updates: number; listChanges: number }> {
  // A full bucket: the rate test before this one may have emptied it.
  await redis.cli('FLUSHALL');
  const file = `workspace/${name}.md`;
  const marker = `workspace/${name}-marker.md`;
  const onDisk = `workspace/${name}-on-disk.md`;
  const uriOf = (path: string) => `file://${demo.project}/${path}`;
  const writing = await modernHttpClient(writer.url, `${name}-writer`);
  const write = (path: string, content: string) =>
    writing.callTool({ name: 'write_file', arguments: { path, content } });
  for (const path of [file, marker, onDisk]) await write(path, 'first\n');
  const client = await modernHttpClient(listener.url, `${name}-listener`);
  const updates: string[] = [];
  let listChanges = 0;
  client.setNotificationHandler('notifications/resources/updated', (n) => {
    updates.push(n.params.uri);
  });
  client.setNotificationHandler('notifications/resources/list_changed', () => {
    listChanges += 1;
  });
  const subscription = await client.listen({
    resourceSubscriptions: [uriOf(file), uriOf(marker), uriOf(onDisk)],
    resourcesListChanged: true,
  });
  let round = 0;
  await until(
    async () => {
      await write(marker, `${++round}\n`);
      return updates.includes(uriOf(marker));
    },
    { what: 'the listener to hear the marker', intervalMs: 100 },
  );
  if (watched) {
    await until(
      async () => {
        await appendFile(join(demo.project, onDisk), 'more\n');
        return updates.includes(uriOf(onDisk));
      },
      { what: "the listener's own watcher to report a change on disk", intervalMs: 200 },
    );
  }
  const listChangesBefore = listChanges;
  await write(file, 'second, and longer\n');
  const markers = updates.filter((u) => u === uriOf(marker)).length;
  await write(marker, 'last\n');
  await until(() => updates.filter((u) => u === uriOf(marker)).length > markers && updates.includes(uriOf(file)), {
    what: 'the update and the last marker',
    describe: () => JSON.stringify(updates),
  });
  // A watcher's echo comes a debounce after the write; the listener's own watcher echoes the last
  // marker too, and that echo (were it told) would come after the file's.
  await until(
    async () => {
      await appendFile(join(demo.project, onDisk), 'later\n');
      return updates.filter((u) => u === uriOf(onDisk)).length >= (watched ? 2 : 0);
    },
    { what: 'a later change on disk, past any echo', intervalMs: 300 },
  );
  await subscription.close();
  await client.close();
  await writing.close();
  return { updates: updates.filter((u) => u === uriOf(file)).length, listChanges: listChanges - listChangesBefore };
}

describe('changes across replicas', () => {
  it('reach a listener on a replica that watches nothing, from a write through another', async () => {
    const heard = await heardOnce(blind as ServingProcess, replicas[1] as ServingProcess, 'over-the-bus', false);
    expect(heard).toEqual({ updates: 1, listChanges: 0 });
  });

  it('reach a listener once when its own watcher sees the same write on the shared volume', async () => {
    const heard = await heardOnce(replicas[0] as ServingProcess, replicas[2] as ServingProcess, 'seen-twice', true);
    expect(heard).toEqual({ updates: 1, listChanges: 0 });
  });
});

describe('tasks across replicas', () => {
  const withTasks = {
    'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
  };
  const start = async (replica: ServingProcess, path: string) => {
    const [message] = await messagesOf(
      await postModern(
        replica.url,
        'tools/call',
        { name: 'process_large_dataset', arguments: { path, chunkSize: 1024 } },
        { client: 'task-starter', meta: withTasks },
      ),
    );
    const result = (message as { result?: { resultType?: string; taskId?: string } }).result;
    expect(result?.resultType, JSON.stringify(message)).toBe('task');
    return result?.taskId as string;
  };
  /** Once connected to Redis (required: /ready says so): before, a task would run as a plain call. */
  const ready = async (replica: ServingProcess) => {
    await until(async () => (await fetch(replica.url.replace(/\/mcp$/, '/ready'))).status === 200, {
      what: 'the new replica to be ready',
    });
    return replica;
  };
  const poll = async (replica: ServingProcess, taskId: string) => {
    const [message] = await messagesOf(
      await postModern(replica.url, 'tasks/get', { taskId }, { meta: withTasks, headers: { 'mcp-name': taskId } }),
    );
    return (message as { result?: Record<string, unknown> }).result;
  };
  /** A listen stream that follows `taskIds`, read to its end: the tasks notifications it carried. */
  const follow = async (replica: ServingProcess, taskIds: string[]) => {
    const messages = await messagesOf(
      await postModern(
        replica.url,
        'subscriptions/listen',
        { notifications: { taskIds } },
        { client: 'task-follower', meta: withTasks, id: 'follow' },
      ),
    );
    const [ack] = messages as { params?: { notifications?: { taskIds?: string[] } } }[];
    expect(ack?.params?.notifications?.taskIds).toEqual(taskIds);
    return messages
      .filter((m) => m.method === 'notifications/tasks')
      .map((m) => m.params as Record<string, unknown> & { status: string });
  };

  beforeAll(async () => {
    await redis.cli('FLUSHALL');
    await writeFile(join(demo.project, 'workspace/tasks-small.csv'), 'a,b\n1,2\n');
    await writeFile(join(demo.project, 'workspace/tasks-big.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(8_000_000));
    await writeFile(join(demo.project, 'workspace/tasks-medium.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(1_200_000));
  });

  it("push a task's status to a listen stream on another replica, its end exactly once", async () => {
    const taskId = await start(replicas[0] as ServingProcess, 'workspace/tasks-medium.csv');
    const told = await follow(replicas[1] as ServingProcess, [taskId]);
    const statuses = told.map((task) => task.status);
    expect(statuses[0]).toBe('working');
    expect(statuses.filter((status) => status === 'completed')).toHaveLength(1);
    expect(statuses.at(-1)).toBe('completed');
    const end = told.at(-1)?.result as { structuredContent?: { records?: number } } | undefined;
    expect(end?.structuredContent?.records).toBe(1_200_000 - 1);
  });

  it('answer tasks/get from any replica, with the result of a task another ran', async () => {
    const taskId = await start(replicas[0] as ServingProcess, 'workspace/tasks-small.csv');
    const done = await until(
      async () => {
        const task = await poll(replicas[1] as ServingProcess, taskId);
        return task?.status === 'completed' ? task : undefined;
      },
      { what: 'the task, seen through another replica, to complete', intervalMs: 50 },
    );
    expect((done.result as { structuredContent?: { records?: number } }).structuredContent?.records).toBe(1);
  });

  it('fail the task of a replica killed while running it, within the lease', async () => {
    const config = await demo.configWith('tasks-doomed.yaml', clusterYaml(redis.url, ', required: true'));
    const doomed = await ready(await serveMcpd(['--config', config, '--port', '0']));
    const taskId = await start(doomed, 'workspace/tasks-big.csv');
    expect((await poll(replicas[0] as ServingProcess, taskId))?.status).toBe('working');
    // A listener on another replica: nobody signals a dead replica's task, its watch finds it lapsed.
    let followedEnd = 0;
    const followed = follow(replicas[1] as ServingProcess, [taskId]).then((told) => {
      followedEnd = performance.now();
      return told;
    });
    await until(async () => Number((await redis.cli('PUBSUB', 'NUMSUB', 'replicas:tasks')).split('\n')[1]) >= 1, {
      what: 'the listener to follow the task',
      intervalMs: 20,
    });
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const killedAt = performance.now();
    const failed = await until(
      async () => {
        const task = await poll(replicas[0] as ServingProcess, taskId);
        return task?.status === 'failed' ? task : undefined;
      },
      { what: 'the orphaned task to be failed', intervalMs: 100, timeoutMs: 15_000 },
    );
    // The lease (2 s) plus one poll.
    expect(performance.now() - killedAt).toBeLessThan(2000 + 1500);
    expect(failed).toMatchObject({ error: { message: expect.stringMatching(/replica running this task stopped/) } });
    // Pushed too: the lease plus the watch's look (half a lease), plus slack for a loaded machine.
    const told = await followed;
    expect(told.at(-1)).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/stopped/) } });
    expect(followedEnd - killedAt).toBeLessThan(2000 + 1000 + 1500);
  });

  it('fail the task of a draining replica past its grace period, saying so', async () => {
    const config = await demo.configWith(
      'tasks-draining.yaml',
      `${clusterYaml(redis.url, ', required: true')}shutdown: { gracePeriodMs: 200 }\n`,
    );
    const draining = await ready(await serveMcpd(['--config', config, '--port', '0']));
    const taskId = await start(draining, 'workspace/tasks-big.csv');
    expect(await draining.stop('SIGTERM')).toBe(0);
    const task = await poll(replicas[0] as ServingProcess, taskId);
    expect(task).toMatchObject({
      status: 'failed',
      error: { message: expect.stringMatching(/shut down before it finished/) },
    });
  });
});

describe('Redis restarted mid-run', () => {
  /** Redis commands a replica's metrics count as `outcome`, and limits it decided without Redis. */
  const counts = async (replica: ServingProcess) => {
    const text = await (await fetch(replica.url.replace(/\/mcp$/, '/metrics'))).text();
    const sum = (pattern: RegExp) => [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1]), 0);
    return {
      ok: sum(/^mcpd_redis_command_duration_seconds_count\{[^}]*outcome="ok"[^}]*\} (\d+)/gm),
      fallbacks: sum(/^mcpd_shared_limit_fallbacks_total\{[^}]*\} (\d+)/gm),
    };
  };

  it('costs no call, crashes no replica, and shares the limits again within 5 s of Redis answering', async () => {
    await redis.cli('FLUSHALL');
    const statuses: number[] = [];
    /** One call through each replica: the load, made while the test waits on each condition. */
    const callEach = async () => {
      for (const replica of replicas) {
        const response = await postModern(replica.url, 'tools/call', { name: 'list_roots', arguments: {} });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
    };
    // Polled at this pace, the calls stay within the shared bucket (60, then 2 a second) and
    // within each replica's own while Redis is away.
    const underLoad = { intervalMs: 150 };
    await until(
      async () => {
        await callEach();
        return statuses.length >= 6;
      },
      { what: 'calls before the restart', ...underLoad },
    );
    await redis.stop('SIGKILL');
    await until(
      async () => {
        await callEach();
        return (await Promise.all(replicas.map(counts))).every((c) => c.fallbacks > 0);
      },
      { what: 'every replica to decide a limit without Redis', ...underLoad },
    );
    const before = await Promise.all(replicas.map(counts));
    const restarted = performance.now();
    await redis.start();
    await until(
      async () => {
        await callEach();
        return (await Promise.all(replicas.map(counts))).every((c, i) => c.ok > (before[i]?.ok ?? 0));
      },
      { what: 'every replica to use Redis again', timeoutMs: 15_000, ...underLoad },
    );
    const recoveryMs = performance.now() - restarted;
    await callEach();
    await callEach();
    process.stdout.write(
      `redis restart: ${statuses.length} calls, none failed; limits shared again ${recoveryMs.toFixed(0)} ms after Redis came back\n`,
    );
    expect(recoveryMs).toBeLessThan(5000);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    for (const replica of replicas) expect(replica.child.exitCode).toBeNull();
  });
});

describe('a replica that requires Redis', () => {
  let away: RedisServer;
  let replica: ServingProcess;

  beforeAll(async () => {
    away = await startRedis();
    await away.stop();
    const config = await demo.configWith(
      'required.yaml',
      clusterYaml(away.url, ', required: true, onUnavailable: closed'),
    );
    replica = await serveMcpd(['--config', config, '--port', '0']);
  });

  afterAll(async () => {
    await replica?.stop();
    await away?.close();
  });

  it('is not ready and refuses calls (503) while Redis is away, and recovers when it is back', async () => {
    const ready = () => fetch(replica.url.replace(/\/mcp$/, '/ready'));
    const down = await ready();
    expect(down.status).toBe(503);
    expect(await down.text()).toMatch(/redis/);
    const refused = await postModern(replica.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/shared limits cannot be checked/);

    await away.start();
    await until(async () => (await ready()).status === 200, {
      what: '/ready once Redis is back (reconnect backoff at most 2 s)',
      timeoutMs: 15_000,
    });
    const served = await postModern(replica.url, 'tools/call', { name: 'list_roots', arguments: {} });
    expect(served.status).toBe(200);
  });
});
