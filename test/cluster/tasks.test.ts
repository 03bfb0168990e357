import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CancelTaskResultV2Schema,
  CreateTaskResultV2Schema,
  GetTaskResultV2Schema,
  TaskStatusNotificationV2Schema,
} from '@modelcontextprotocol/ext-tasks/core/v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryBus } from '../../src/cluster/changeBus.js';
import { LocalCallQuota } from '../../src/cluster/concurrency.js';
import { sharedState } from '../../src/cluster/shared.js';
import { InMemoryTaskStore, LEASE_LAPSED, type TaskStore } from '../../src/cluster/tasks.js';
import type { Config } from '../../src/config/schema.js';
import type { ToolCall } from '../../src/mcp/calls.js';
import { TaskRunner } from '../../src/mcp/tasks.js';
import type { ToolDefinition } from '../../src/mcp/toolkit.js';
import { TOOLS } from '../../src/mcp/tools/index.js';
import { createLogger } from '../../src/ops/logger.js';
import { attribute, type SpanReceiver, startSpanReceiver } from '../helpers/otlp.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { type RedisServer, redisSettings, startRedis } from '../helpers/redis.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Long calls as tasks (the Tasks extension, SEP-2663): the task store's contract, in memory and
 * in a real Redis, then the wire as a 2026-07-28 client sees it, checked against the extension's
 * own schemas (@modelcontextprotocol/ext-tasks).
 */

let redis: RedisServer;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const close of closers) await close();
  await redis.close();
});

async function redisStore(): Promise<TaskStore> {
  const settings = redisSettings(redis.url);
  const state = await sharedState({ cluster: { redis: settings, leaseMs: 15_000 } } as unknown as Config, {
    logger: createLogger('silent'),
    replica: 'tasks',
    observer: { command: () => {}, fallback: () => {}, traced: (_name, run) => run() },
  });
  closers.push(() => state.close());
  await until(() => state.redisReady, { what: 'redis connected' });
  return state.tasks;
}

const task = (taskId: string, leaseMs = 60_000) => ({
  taskId,
  owner: 'alice',
  tool: 'process_large_dataset',
  ttlMs: 60_000,
  leaseMs,
});

describe.each([
  ['in memory', async () => new InMemoryTaskStore() as TaskStore],
  ['in Redis', redisStore],
] as const)('the task store, %s', (_name, make) => {
  it('keeps a task from creation to its end, with its result exactly as given', async () => {
    const store = await make();
    const created = await store.create(task('t-1'));
    expect(created).toMatchObject({ taskId: 't-1', owner: 'alice', status: 'working', ttlMs: 60_000 });
    expect(Date.parse(created.createdAt)).not.toBeNaN();
    expect(await store.get('t-1')).toMatchObject({ status: 'working' });
    // Empty arrays and objects, unicode and nesting come back as they went in.
    const result = {
      content: [{ type: 'text', text: 'done ✓' }],
      structuredContent: { rows: [], columns: {}, nested: { list: [1, [2, []]] } },
    };
    await store.finish('t-1', { status: 'completed', result, statusMessage: 'finished' });
    expect(await store.get('t-1')).toMatchObject({ status: 'completed', result, statusMessage: 'finished' });
    // The first end stands.
    await store.finish('t-1', { status: 'cancelled', statusMessage: 'late' });
    expect((await store.get('t-1'))?.status).toBe('completed');
    expect(await store.get('nope')).toBeUndefined();
  });

  it('tells the runner of a cancel at its next renewal, and keeps its progress message', async () => {
    const store = await make();
    await store.create(task('t-2'));
    expect(await store.renew([{ taskId: 't-2', statusMessage: '10 of 100 done' }], 60_000)).toEqual([]);
    expect((await store.get('t-2'))?.statusMessage).toBe('10 of 100 done');
    expect(await store.requestCancel('t-2')).toBe(true);
    expect(await store.requestCancel('nope')).toBe(false);
    expect(await store.renew([{ taskId: 't-2', statusMessage: '20 of 100 done' }], 60_000)).toEqual(['t-2']);
  });

  it('fails a task whose runner stopped renewing, once its lease lapses, and never lets it finish after', async () => {
    const store = await make();
    await store.create(task('t-3', 150));
    const lapsed = await until(
      async () => {
        const found = await store.get('t-3');
        return found?.status === 'failed' ? found : undefined;
      },
      { what: 'the lease to lapse' },
    );
    expect(lapsed).toMatchObject({ error: LEASE_LAPSED.status === 'failed' ? LEASE_LAPSED.error : {} });
    await store.finish('t-3', { status: 'completed', result: { content: [] } });
    expect((await store.get('t-3'))?.status).toBe('failed');
  });
});

describe('tasks over HTTP (2026-07-28, the extension declared)', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  const sha = (key: string) => createHash('sha256').update(key).digest('hex');
  const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
  const withTasks = {
    'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
  };

  beforeAll(async () => {
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/small.csv'), 'a,b\n1,2\n3,4\n');
    await writeFile(join(demo.project, 'workspace/big.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(4_000_000));
    await writeFile(join(demo.project, 'workspace/medium.csv'), 'a,b,c,d,e,f,g,h\n'.repeat(1_200_000));
    const config = await demo.configWith(
      'tasks.yaml',
      [
        'auth:',
        '  mode: apiKeys',
        '  apiKeys:',
        `    - { principal: alice, sha256: ${sha('alice-key')}, scopes: [mcpd:read] }`,
        `    - { principal: bob, sha256: ${sha('bob-key')}, scopes: [mcpd:read] }`,
        // Renewals (a third of the lease) carry progress to listeners: often enough to see some.
        'cluster: { leaseMs: 1000 }',
        '',
      ].join('\n'),
    );
    server = await startServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  async function call(
    method: string,
    params: Record<string, unknown>,
    key: string,
    meta: Record<string, unknown> = {},
  ) {
    const named: Record<string, string> = typeof params.taskId === 'string' ? { 'mcp-name': params.taskId } : {};
    const response = await postModern(server.url, method, params, {
      client: 'tasks-test',
      meta,
      headers: { ...as(key).headers, ...named },
    });
    const [message] = await messagesOf(response);
    return message as { result?: Record<string, unknown>; error?: { code: number; message: string } };
  }

  /** process_large_dataset on `path` as alice's task (1 KiB chunks: it runs a while); its id. */
  async function startTask(path: string): Promise<string> {
    const created = await call(
      'tools/call',
      { name: 'process_large_dataset', arguments: { path, chunkSize: 1024 } },
      'alice-key',
      withTasks,
    );
    return created.result?.taskId as string;
  }

  /** A listen stream's messages, once it has ended (a stream that follows only tasks ends with them). */
  async function listen(taskIds: string[], key: string, extra: Record<string, unknown> = {}) {
    const response = await postModern(
      server.url,
      'subscriptions/listen',
      { notifications: { taskIds, ...extra } },
      { client: 'tasks-test', meta: withTasks, headers: as(key).headers, id: 'listen-1' },
    );
    return (await messagesOf(response)) as {
      method?: string;
      params?: Record<string, unknown> & { _meta?: Record<string, unknown> };
      result?: Record<string, unknown>;
    }[];
  }

  it('refuses task status notifications to a client that did not declare the extension', async () => {
    const refused = await call('subscriptions/listen', { notifications: { taskIds: ['any'] } }, 'alice-key');
    expect(refused.error).toEqual({
      code: -32021,
      message: 'Missing required client capability',
      data: { requiredCapabilities: { extensions: { 'io.modelcontextprotocol/tasks': {} } } },
    });
  });

  it('pushes the status of a task to a listen stream that follows it, and ends once the task has', async () => {
    const taskId = await startTask('workspace/medium.csv');
    const messages = await listen([taskId, 'no-such-task'], 'alice-key');
    const [ack, ...rest] = messages;
    // Acknowledged first, with the tasks it will hear of: the unknown one left out.
    expect(ack).toMatchObject({
      method: 'notifications/subscriptions/acknowledged',
      params: { notifications: { taskIds: [taskId] }, _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-1' } },
    });
    const told = rest.filter((m) => m.method === 'notifications/tasks');
    for (const note of told) {
      expect(TaskStatusNotificationV2Schema.safeParse({ jsonrpc: '2.0', ...note }).success, JSON.stringify(note)).toBe(
        true,
      );
      expect(note.params?._meta).toMatchObject({ 'io.modelcontextprotocol/subscriptionId': 'listen-1' });
    }
    const statuses = told.map((m) => m.params?.status);
    // Its state at once (working: the call reads 19 MB), progress at renewals, then its end, once.
    expect(statuses[0]).toBe('working');
    expect(statuses.filter((status) => status === 'completed')).toHaveLength(1);
    expect(statuses.at(-1)).toBe('completed');
    expect(told.some((m) => /of \d+ done|\d+ done/.test(String(m.params?.statusMessage)))).toBe(true);
    const end = told.at(-1)?.params as { result?: { structuredContent?: { records?: number } } };
    expect(end.result?.structuredContent?.records).toBe(1_200_000 - 1);
    // Then the stream's own end: its final result.
    expect(rest.at(-1)?.result).toMatchObject({ resultType: 'complete' });
  });

  it("tells nobody of another principal's task: the stream hears of none and ends at once", async () => {
    const taskId = await startTask('workspace/big.csv');
    const messages = await listen([taskId], 'bob-key');
    expect(messages[0]?.params?.notifications).toEqual({ taskIds: [] });
    expect(messages.filter((m) => m.method === 'notifications/tasks')).toEqual([]);
    expect(messages.at(-1)?.result).toMatchObject({ resultType: 'complete' });
    await call('tasks/cancel', { taskId }, 'alice-key', withTasks);
  });

  it('hears resource changes on the same stream as tasks, when asked for both', async () => {
    const controller = new AbortController();
    const response = await postModern(
      server.url,
      'subscriptions/listen',
      { notifications: { taskIds: ['any'], resourcesListChanged: true } },
      { client: 'tasks-test', meta: withTasks, headers: as('alice-key').headers, signal: controller.signal },
    );
    const reader = response.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let text = '';
    const readUntil = async (what: string) => {
      while (!text.includes(what)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil('subscriptions/acknowledged');
    const ack = JSON.parse(
      text
        .split('\n')
        .find((line) => line.includes('acknowledged'))
        ?.replace(/^data: /, '') ?? '{}',
    ) as { params?: { notifications?: Record<string, unknown> } };
    expect(ack.params?.notifications).toEqual({ resourcesListChanged: true, taskIds: [] });
    await server.app.changes.whenWatching();
    await writeFile(join(demo.project, 'workspace/listened-new-file.md'), 'new\n');
    await readUntil('notifications/resources/list_changed');
    controller.abort();
    expect(text).toContain('notifications/resources/list_changed');
  });

  it('advertises the extension in server/discover', async () => {
    const discover = await call('server/discover', {}, 'alice-key');
    expect(discover.result?.capabilities).toMatchObject({ extensions: { 'io.modelcontextprotocol/tasks': {} } });
  });

  it('answers a long call with a task, whose result tasks/get gives once it is done', async () => {
    const args = { name: 'process_large_dataset', arguments: { path: 'workspace/small.csv' } };
    const direct = await call('tools/call', args, 'alice-key');
    expect(direct.result?.resultType).toBe('complete');

    const created = await call('tools/call', args, 'alice-key', withTasks);
    expect(CreateTaskResultV2Schema.safeParse(created.result).success, JSON.stringify(created)).toBe(true);
    expect(created.result).toMatchObject({ resultType: 'task', status: 'working', pollIntervalMs: 1000 });
    const taskId = created.result?.taskId as string;

    const done = await until(
      async () => {
        const polled = await call('tasks/get', { taskId }, 'alice-key', withTasks);
        return polled.result?.status === 'completed' ? polled.result : undefined;
      },
      { what: 'the task to complete', intervalMs: 50 },
    );
    expect(GetTaskResultV2Schema.safeParse(done).success, JSON.stringify(done)).toBe(true);
    expect(done.resultType).toBe('complete');
    // The result a client would have had from the call itself (bar the timing it reports).
    const { _meta: _ignored, resultType: _type, ...bare } = direct.result as Record<string, unknown>;
    expect(Object.keys(done.result as object).sort()).toEqual(Object.keys(bare).sort());
    expect((done.result as { structuredContent?: { bytes?: number } }).structuredContent?.bytes).toBe(
      (bare as { structuredContent?: { bytes?: number } }).structuredContent?.bytes,
    );
  });

  it('hides a task from any other principal, as if it did not exist', async () => {
    const created = await call(
      'tools/call',
      { name: 'process_large_dataset', arguments: { path: 'workspace/small.csv' } },
      'alice-key',
      withTasks,
    );
    const taskId = created.result?.taskId as string;
    const foreign = await call('tasks/get', { taskId }, 'bob-key', withTasks);
    const unknown = await call('tasks/get', { taskId: 'no-such-task' }, 'bob-key', withTasks);
    expect(foreign.error).toEqual(unknown.error);
    expect(foreign.error?.code).toBe(-32602);
    expect((await call('tasks/cancel', { taskId }, 'bob-key', withTasks)).error?.code).toBe(-32602);
  });

  it('cancels a running task on tasks/cancel', async () => {
    const taskId = await startTask('workspace/big.csv');
    const cancelled = await call('tasks/cancel', { taskId }, 'alice-key', withTasks);
    expect(CancelTaskResultV2Schema.safeParse(cancelled.result).success, JSON.stringify(cancelled)).toBe(true);
    const ended = await until(
      async () => {
        const polled = await call('tasks/get', { taskId }, 'alice-key', withTasks);
        return polled.result?.status === 'working' ? undefined : polled.result;
      },
      { what: 'the task to stop', intervalMs: 50 },
    );
    expect(ended).toMatchObject({ status: 'cancelled', statusMessage: 'cancelled by the client' });
  });
});

describe('the task runner', () => {
  it('leaves a call to run as a plain call when the store cannot take the task, and frees its slot', async () => {
    const failing: TaskStore = {
      create: async () => {
        throw new Error('redis is not connected');
      },
      get: async () => undefined,
      renew: async () => [],
      finish: async () => {},
      requestCancel: async () => false,
    };
    const quota = new LocalCallQuota();
    const runner = new TaskRunner(
      failing,
      quota,
      { ttlMs: 60_000, leaseMs: 15_000, pollIntervalMs: 1000 },
      new InMemoryBus(),
    );
    const tool = TOOLS.find((t) => t.name === 'process_large_dataset') as ToolDefinition;
    const call = {
      caller: {
        principal: { id: 'alice', scopes: [] },
        requestId: 'r',
        client: null,
        userAgent: null,
        transport: 'http',
        method: 'tools/call',
        tool: tool.name,
        signal: new AbortController().signal,
      },
      services: { config: { limits: { maxConcurrentRequests: 10, maxConcurrentPerPrincipal: 1 } } },
    } as unknown as ToolCall;
    expect(await runner.start(tool, {}, call)).toBeUndefined();
    // Its one slot is free again.
    const slot = await quota.acquire('alice', 10, 1, 1);
    expect(slot).toBeTruthy();
  });

  it('answers tasks/get and tasks/cancel with an error, not a crash, when the store is unreachable', async () => {
    const unreachable: TaskStore = {
      create: async () => {
        throw new Error('down');
      },
      get: async () => {
        throw new Error('down');
      },
      renew: async () => [],
      finish: async () => {},
      requestCancel: async () => false,
    };
    const runner = new TaskRunner(
      unreachable,
      new LocalCallQuota(),
      { ttlMs: 60_000, leaseMs: 15_000, pollIntervalMs: 1000 },
      new InMemoryBus(),
    );
    const alice = { id: 'alice', scopes: [] };
    expect(await runner.get(alice, 't')).toMatchObject({ code: -32603, message: expect.stringMatching(/unreachable/) });
    expect(await runner.cancel(alice, 't')).toMatchObject({ code: -32603 });
  });
});

describe('Redis calls in traces', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let receiver: SpanReceiver;

  beforeAll(async () => {
    // Spans leave in a fifth of a second, not five.
    process.env.OTEL_BSP_SCHEDULE_DELAY = '200';
    receiver = await startSpanReceiver();
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/traced.csv'), 'a,b\n1,2\n');
    const config = await demo.configWith(
      'traced.yaml',
      [
        `tracing: { enabled: true, endpoint: "${receiver.url}" }`,
        `cluster: { redis: { url: "${redis.url}", keyPrefix: "traced:", required: true } }`,
        '',
      ].join('\n'),
    );
    server = await startServer(config);
    await until(async () => (await fetch(`${server.base}/ready`)).status === 200, { what: 'redis connected' });
  });
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
    await demo?.cleanup();
  });

  it('records each Redis command as a span, inside the call that made it', async () => {
    const withTasks = {
      'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
    };
    const response = await postModern(
      server.url,
      'tools/call',
      { name: 'process_large_dataset', arguments: { path: 'workspace/traced.csv' } },
      { client: 'traced', meta: withTasks },
    );
    const [message] = await messagesOf(response);
    expect((message as { result?: { resultType?: string } }).result?.resultType).toBe('task');
    const spans = await until(
      () => {
        const create = receiver.spans.find((span) => span.name === 'redis mcpdTaskCreate');
        const admit = receiver.spans.find((span) => span.name === 'redis mcpdAdmit');
        return create && admit ? { create, admit } : undefined;
      },
      { what: 'the Redis spans', describe: () => receiver.spans.map((span) => span.name).join(', ') },
    );
    expect(attribute(spans.create, 'db.system.name')).toBe('redis');
    expect(attribute(spans.create, 'db.operation.name')).toBe('mcpdTaskCreate');
    // The task was created by the tools/call: its span is in that call's trace, under it. The call's
    // span ends after its children, so it may reach the receiver in a later batch.
    const call = await until(
      () => receiver.spans.find((span) => span.traceId === spans.create.traceId && span.parentSpanId === undefined),
      { what: 'the root span of the call', describe: () => receiver.spans.map((span) => span.name).join(', ') },
    );
    expect(call.name).toMatch(/tools\/call/);
  });
});
