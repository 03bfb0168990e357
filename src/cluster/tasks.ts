import type { SharedRedis } from './redis.js';

/**
 * Where long calls run as tasks keep their state (the Tasks extension, SEP-2663): in this process,
 * or in Redis where every replica can answer tasks/get and tasks/cancel. A task belongs to the
 * principal that started it. The replica running it holds a lease and renews it; a task whose
 * lease lapses (its replica died) is failed by whoever looks at it next, never left working.
 */

export type TaskStatus = 'working' | 'completed' | 'failed' | 'cancelled';

export interface TaskRecord {
  readonly taskId: string;
  /** The principal that started it: nobody else may see or cancel it. */
  readonly owner: string;
  readonly tool: string;
  readonly status: TaskStatus;
  readonly statusMessage?: string;
  readonly createdAt: string;
  readonly lastUpdatedAt: string;
  readonly ttlMs: number;
  /** The CallToolResult of a completed task. */
  readonly result?: Record<string, unknown>;
  /** The JSON-RPC error of a failed task. */
  readonly error?: { readonly code: number; readonly message: string };
}

/** How a task ended, as its runner reports it. */
export type TaskEnd =
  | { readonly status: 'completed'; readonly result: Record<string, unknown>; readonly statusMessage?: string }
  | { readonly status: 'failed'; readonly error: { code: number; message: string }; readonly statusMessage: string }
  | { readonly status: 'cancelled'; readonly statusMessage: string };

/** What a task whose runner vanished becomes. */
export const LEASE_LAPSED: TaskEnd = {
  status: 'failed',
  error: { code: -32603, message: 'the replica running this task stopped before it finished' },
  statusMessage: 'the replica running this task stopped before it finished',
};

export interface TaskStore {
  /** Records a new working task, leased for `leaseMs`; resolves once a get would find it. */
  create(task: { taskId: string; owner: string; tool: string; ttlMs: number; leaseMs: number }): Promise<TaskRecord>;
  /** The task, failed first if its lease lapsed; undefined when unknown or expired. */
  get(taskId: string): Promise<TaskRecord | undefined>;
  /**
   * Renews the leases of tasks this replica runs, with their progress message, and says which of
   * them a client asked to cancel.
   */
  renew(tasks: readonly { taskId: string; statusMessage: string }[], leaseMs: number): Promise<string[]>;
  /** Ends a working task; a task already ended (its lease lapsed meanwhile) keeps its first end. */
  finish(taskId: string, end: TaskEnd): Promise<void>;
  /** Asks the task's runner, wherever it is, to stop; false when there is no such task. */
  requestCancel(taskId: string): Promise<boolean>;
}

interface Held {
  record: TaskRecord;
  leaseUntil: number;
  cancel: boolean;
  expiresAt: number;
}

const ended = (record: TaskRecord, end: TaskEnd, now: Date): TaskRecord => {
  const { result: _result, error: _error, statusMessage: _message, ...base } = record;
  return {
    ...base,
    status: end.status,
    lastUpdatedAt: now.toISOString(),
    ...(end.statusMessage === undefined ? {} : { statusMessage: end.statusMessage }),
    ...(end.status === 'completed' ? { result: end.result } : {}),
    ...(end.status === 'failed' ? { error: end.error } : {}),
  };
};

/** One process: a map, swept of expired tasks as it is used. */
export class InMemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, Held>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  async create(task: { taskId: string; owner: string; tool: string; ttlMs: number; leaseMs: number }) {
    const now = this.now();
    this.sweep(now);
    const stamp = new Date(now).toISOString();
    const record: TaskRecord = {
      taskId: task.taskId,
      owner: task.owner,
      tool: task.tool,
      status: 'working',
      createdAt: stamp,
      lastUpdatedAt: stamp,
      ttlMs: task.ttlMs,
    };
    this.tasks.set(task.taskId, { record, leaseUntil: now + task.leaseMs, cancel: false, expiresAt: now + task.ttlMs });
    return record;
  }

  async get(taskId: string) {
    const now = this.now();
    const held = this.tasks.get(taskId);
    if (!held || held.expiresAt <= now) return undefined;
    if (held.record.status === 'working' && held.leaseUntil <= now)
      held.record = ended(held.record, LEASE_LAPSED, new Date(now));
    return held.record;
  }

  async renew(tasks: readonly { taskId: string; statusMessage: string }[], leaseMs: number) {
    const now = this.now();
    const cancelled: string[] = [];
    for (const { taskId, statusMessage } of tasks) {
      const held = this.working(taskId);
      if (!held) continue;
      held.leaseUntil = now + leaseMs;
      if (statusMessage !== held.record.statusMessage) {
        held.record = { ...held.record, statusMessage, lastUpdatedAt: new Date(now).toISOString() };
      }
      if (held.cancel) cancelled.push(taskId);
    }
    return cancelled;
  }

  async finish(taskId: string, end: TaskEnd) {
    const held = this.working(taskId);
    if (held) held.record = ended(held.record, end, new Date(this.now()));
  }

  private working(taskId: string): Held | undefined {
    const held = this.tasks.get(taskId);
    return held?.record.status === 'working' ? held : undefined;
  }

  async requestCancel(taskId: string) {
    const held = this.tasks.get(taskId);
    if (!held || held.expiresAt <= this.now()) return false;
    held.cancel = true;
    return true;
  }

  private sweep(now: number): void {
    for (const [id, held] of this.tasks) if (held.expiresAt <= now) this.tasks.delete(id);
  }
}

/**
 * One hash per task: the record as JSON, the lease's end and the cancel flag, expiring with the
 * task's TTL. Each script touches that one key and reads Redis's clock, so replicas' clocks and
 * Redis Cluster's slots do not matter.
 */
export const TASK_SCRIPTS = {
  mcpdTaskCreate: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = cjson.decode(ARGV[1])
local stamp = ARGV[4]
record.createdAt = stamp
record.lastUpdatedAt = stamp
redis.call('HSET', KEYS[1], 'record', cjson.encode(record), 'lease', now + tonumber(ARGV[2]), 'cancel', 0)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return cjson.encode(record)
`,
  // ARGV[1]: the end of a lapsed lease, as JSON; ARGV[2]: now as ISO text. Returns the record and
  // the result (kept as the text it was given: cjson would turn an empty array into an object).
  mcpdTaskGet: `
local held = redis.call('HMGET', KEYS[1], 'record', 'lease', 'result')
if not held[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = cjson.decode(held[1])
if record.status == 'working' and tonumber(held[2]) <= now then
  local lapse = cjson.decode(ARGV[1])
  record.status = lapse.status
  record.error = lapse.error
  record.statusMessage = lapse.statusMessage
  record.lastUpdatedAt = ARGV[2]
  local text = cjson.encode(record)
  redis.call('HSET', KEYS[1], 'record', text)
  return { text, '' }
end
return { held[1], held[3] or '' }
`,
  // ARGV[1]: lease ms; ARGV[2]: status message; ARGV[3]: now as ISO text. Returns the cancel flag.
  mcpdTaskRenew: `
local held = redis.call('HMGET', KEYS[1], 'record', 'cancel')
if not held[1] then return 0 end
local record = cjson.decode(held[1])
if record.status ~= 'working' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if record.statusMessage ~= ARGV[2] then
  record.statusMessage = ARGV[2]
  record.lastUpdatedAt = ARGV[3]
  redis.call('HSET', KEYS[1], 'record', cjson.encode(record))
end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[1]))
return tonumber(held[2])
`,
  // ARGV[1]: the end without its result, as JSON; ARGV[2]: now as ISO text; ARGV[3]: the result's JSON, or ''.
  mcpdTaskFinish: `
local held = redis.call('HGET', KEYS[1], 'record')
if not held then return 0 end
local record = cjson.decode(held)
if record.status ~= 'working' then return 0 end
local finish = cjson.decode(ARGV[1])
record.status = finish.status
record.statusMessage = finish.statusMessage
record.error = finish.error
record.lastUpdatedAt = ARGV[2]
redis.call('HSET', KEYS[1], 'record', cjson.encode(record), 'result', ARGV[3])
return 1
`,
  mcpdTaskCancel: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cancel', 1)
return 1
`,
} as const;

/**
 * Tasks in Redis, for every replica. A task key names the task id inside braces (a Redis Cluster
 * hash tag), so its one key stays on one slot.
 */
export class RedisTaskStore implements TaskStore {
  constructor(private readonly redis: SharedRedis) {}

  async create(task: { taskId: string; owner: string; tool: string; ttlMs: number; leaseMs: number }) {
    const record = { taskId: task.taskId, owner: task.owner, tool: task.tool, status: 'working', ttlMs: task.ttlMs };
    const stamp = new Date().toISOString();
    const created = await this.redis.script(
      'mcpdTaskCreate',
      keyOf(task.taskId),
      JSON.stringify(record),
      task.leaseMs,
      task.ttlMs,
      stamp,
    );
    return JSON.parse(created as string) as TaskRecord;
  }

  async get(taskId: string) {
    const found = await this.redis.script(
      'mcpdTaskGet',
      keyOf(taskId),
      JSON.stringify(LEASE_LAPSED),
      new Date().toISOString(),
    );
    if (!Array.isArray(found)) return undefined;
    const [recordText, resultText] = found as [string, string];
    const record = JSON.parse(recordText) as TaskRecord;
    return resultText ? { ...record, result: JSON.parse(resultText) as Record<string, unknown> } : record;
  }

  async renew(tasks: readonly { taskId: string; statusMessage: string }[], leaseMs: number) {
    const stamp = new Date().toISOString();
    const flags = await Promise.all(
      tasks.map((task) => this.redis.script('mcpdTaskRenew', keyOf(task.taskId), leaseMs, task.statusMessage, stamp)),
    );
    return tasks.filter((_, i) => flags[i] === 1).map((task) => task.taskId);
  }

  async finish(taskId: string, end: TaskEnd) {
    const { result, ...rest } = end as TaskEnd & { result?: unknown };
    await this.redis.script(
      'mcpdTaskFinish',
      keyOf(taskId),
      JSON.stringify(rest),
      new Date().toISOString(),
      result === undefined ? '' : JSON.stringify(result),
    );
  }

  async requestCancel(taskId: string) {
    return (await this.redis.script('mcpdTaskCancel', keyOf(taskId))) === 1;
  }
}

const keyOf = (taskId: string) => `task:{${taskId}}`;
