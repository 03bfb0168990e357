import { randomUUID } from 'node:crypto';
import type { TaskSignals } from '../cluster/changeBus.js';
import type { CallQuota, Slots } from '../cluster/concurrency.js';
import type { TaskEnd, TaskRecord, TaskStore } from '../cluster/tasks.js';
import { isMcpdError, McpdError } from '../errors.js';
import type { Principal } from '../policy/types.js';
import { callTool, type ToolCall } from './calls.js';
import type { ToolDefinition } from './toolkit.js';
import type { ProtocolFailure } from './wire.js';

/**
 * Long tool calls as tasks (the Tasks extension, SEP-2663, 2026-07-28): when a client declares the
 * extension on a call to a tool that can take minutes, the call answers at once with a task handle
 * and runs on here, detached from the request; tasks/get and tasks/cancel reach it from any replica
 * through the task store. A client that does not declare the extension gets the call as before.
 */

export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
const CLIENT_CAPABILITIES_KEY = 'io.modelcontextprotocol/clientCapabilities';

/** Tools that run as tasks when the client can take one: the ones that stream a whole file. */
const TASK_TOOLS = new Set(['process_large_dataset']);

/** Whether a request's envelope declares the Tasks extension among the client's capabilities. */
export function declaresTasks(meta: Record<string, unknown> | undefined): boolean {
  const capabilities = meta?.[CLIENT_CAPABILITIES_KEY] as { extensions?: unknown } | undefined;
  const extensions = capabilities?.extensions;
  return (
    extensions !== null &&
    typeof extensions === 'object' &&
    !Array.isArray(extensions) &&
    Object.hasOwn(extensions as object, TASKS_EXTENSION)
  );
}

export interface TaskSettings {
  /** How long a task and its result are kept after it starts. */
  readonly ttlMs: number;
  /** How long a task outlives the replica running it before it is failed. */
  readonly leaseMs: number;
  /** What tasks/get suggests between polls. */
  readonly pollIntervalMs: number;
}

interface Running {
  readonly stop: AbortController;
  statusMessage: string;
  /** The message the store has (renewals publish a signal only when it changed). */
  storedMessage: string;
  done: Promise<void>;
}

/** At most this many tasks followed by one listen stream. */
export const MAX_FOLLOWED_TASKS = 100;

/** Tasks a listen stream follows, from the moment it was acknowledged. */
export interface TaskWatch {
  /** The ids followed: those asked for that exist and belong to the principal, in the order asked. */
  readonly accepted: readonly string[];
  /** Their state when the watch began, as tasks/get answers it. */
  readonly current: readonly Record<string, unknown>[];
  /** Whether every followed task has ended (or none was accepted). */
  settled(): boolean;
  stop(): void;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** Why the runner stopped a task. */
const CANCELLED_BY_CLIENT = new McpdError('CANCELLED', 'the client cancelled the task');

export class TaskRunner {
  private readonly running = new Map<string, Running>();
  private renewing: NodeJS.Timeout | undefined;
  private readonly streams = new AbortController();

  constructor(
    private readonly store: TaskStore,
    private readonly quota: CallQuota,
    private readonly settings: TaskSettings,
    private readonly signals: TaskSignals,
  ) {}

  /** Aborted when the process ends the listen streams that follow tasks (shutdown, after the drain). */
  get closing(): AbortSignal {
    return this.streams.signal;
  }

  endStreams(): void {
    this.streams.abort();
  }

  /** Whether this call runs as a task. */
  eligible(tool: ToolDefinition, meta: Record<string, unknown> | undefined): boolean {
    return TASK_TOOLS.has(tool.name) && declaresTasks(meta);
  }

  /**
   * Starts `tool` as a task and answers with its handle once the store has it (so a tasks/get on
   * any replica finds it). The task holds one of its principal's call slots while it runs; with
   * none free, the call is refused as BUSY, as a call would be. Undefined when the store cannot
   * take the task (Redis unreachable): the call then runs as a plain call, which the extension
   * allows (the server decides, call by call).
   */
  async start(tool: ToolDefinition, args: unknown, call: ToolCall): Promise<Record<string, unknown> | undefined> {
    const { config } = call.services;
    const { principal } = call.caller;
    const slots = await this.quota.acquire(
      principal.id,
      config.limits.maxConcurrentRequests,
      config.limits.maxConcurrentPerPrincipal,
      1,
    );
    if (slots === undefined || slots === 'unavailable') {
      throw new McpdError('BUSY', 'too many calls in progress for this principal; retry later');
    }
    let record: TaskRecord;
    try {
      record = await this.store.create({
        taskId: randomUUID(),
        owner: principal.id,
        tool: tool.name,
        ttlMs: this.settings.ttlMs,
        leaseMs: this.settings.leaseMs,
      });
    } catch {
      slots.release();
      return undefined;
    }
    this.run(record, tool, args, call, slots);
    this.signals.publish({ taskId: record.taskId });
    return { ...this.wire(record), resultType: 'task' };
  }

  /** The task as tasks/get answers it, or the error for one this principal cannot see. */
  async get(principal: Principal, taskId: string): Promise<Record<string, unknown> | ProtocolFailure> {
    const record = await this.read(taskId);
    if (record === 'unreachable') return storeUnreachable();
    if (!record || record.owner !== principal.id) return unknownTask();
    return this.wire(record);
  }

  /** tasks/cancel: the runner stops at once here, or at its next renewal on another replica. */
  async cancel(principal: Principal, taskId: string): Promise<Record<string, unknown> | ProtocolFailure> {
    const record = await this.read(taskId);
    if (record === 'unreachable') return storeUnreachable();
    if (!record || record.owner !== principal.id) return unknownTask();
    if (record.status === 'working') {
      this.running.get(taskId)?.stop.abort(CANCELLED_BY_CLIENT);
      // Running elsewhere: its replica reads the request at its next renewal.
      try {
        await this.store.requestCancel(taskId);
      } catch {
        return storeUnreachable();
      }
    }
    return {};
  }

  /**
   * Follows tasks for a listen stream: `onChange` gets each followed task's new state (as tasks/get
   * answers it) when its replica signals a change, and when a look at the store finds its lease
   * lapsed (its replica died and signals nothing), at most half a lease late. Tasks the principal
   * cannot see are left out, as tasks/get would answer them unknown.
   */
  async watch(
    principal: Principal,
    taskIds: readonly string[],
    onChange: (task: Record<string, unknown>) => void,
  ): Promise<TaskWatch | ProtocolFailure> {
    const asked = [...new Set(taskIds)];
    const records = await Promise.all(asked.map((taskId) => this.read(taskId)));
    if (records.includes('unreachable')) return storeUnreachable();
    const accepted: string[] = [];
    const current: Record<string, unknown>[] = [];
    const following = new Map<string, string>();
    for (const record of records as (TaskRecord | undefined)[]) {
      if (!record || record.owner !== principal.id) continue;
      accepted.push(record.taskId);
      current.push(this.wire(record));
      if (!TERMINAL.has(record.status)) following.set(record.taskId, stateKey(record));
    }
    // One look per task at a time, in order: a signal and a poll that cross tell each change once.
    const looking = new Map<string, Promise<void>>();
    const look = (taskId: string) => {
      const next = (looking.get(taskId) ?? Promise.resolve()).then(async () => {
        const known = following.get(taskId);
        if (known === undefined) return;
        const record = await this.read(taskId);
        if (record === 'unreachable' || following.get(taskId) === undefined) return;
        if (!record) {
          following.delete(taskId);
          return;
        }
        if (TERMINAL.has(record.status)) following.delete(taskId);
        else following.set(taskId, stateKey(record));
        if (stateKey(record) !== known) onChange(this.wire(record));
      });
      looking.set(taskId, next);
    };
    const unsubscribe = following.size === 0 ? () => {} : this.signals.subscribe(({ taskId }) => look(taskId));
    const polling =
      following.size === 0
        ? undefined
        : setInterval(
            () => {
              for (const taskId of following.keys()) look(taskId);
            },
            Math.max(100, Math.floor(this.settings.leaseMs / 2)),
          );
    polling?.unref();
    return {
      accepted,
      current,
      settled: () => following.size === 0,
      stop: () => {
        following.clear();
        unsubscribe();
        clearInterval(polling);
      },
    };
  }

  /** The task, or `unreachable` when the store cannot be asked (told apart from a task not found). */
  private async read(taskId: string): Promise<TaskRecord | undefined | 'unreachable'> {
    try {
      return await this.store.get(taskId);
    } catch {
      return 'unreachable';
    }
  }

  /** Tasks running in this process. */
  get inProgress(): number {
    return this.running.size;
  }

  /**
   * Shutdown: waits up to `graceMs` for the tasks running here, then stops the rest, which end
   * failed with the reason (a client polling another replica reads it).
   */
  async drain(graceMs: number): Promise<{ unfinished: number }> {
    const all = Promise.all([...this.running.values()].map((task) => task.done));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), late]);
    clearTimeout(timer);
    const unfinished = outcome === 'late' ? this.running.size : 0;
    if (unfinished > 0) {
      const reason = new McpdError('UNAVAILABLE', 'the replica running this task shut down before it finished');
      for (const task of this.running.values()) task.stop.abort(reason);
      await all;
    }
    clearInterval(this.renewing);
    return { unfinished };
  }

  private wire(record: TaskRecord): Record<string, unknown> {
    return {
      taskId: record.taskId,
      status: record.status,
      ...(record.statusMessage === undefined ? {} : { statusMessage: record.statusMessage }),
      createdAt: record.createdAt,
      lastUpdatedAt: record.lastUpdatedAt,
      ttlMs: record.ttlMs,
      pollIntervalMs: this.settings.pollIntervalMs,
      ...(record.status === 'completed' && record.result ? { result: record.result } : {}),
      ...(record.status === 'failed' && record.error ? { error: record.error } : {}),
    };
  }

  private run(record: TaskRecord, tool: ToolDefinition, args: unknown, call: ToolCall, slots: Slots): void {
    const task: Running = {
      stop: new AbortController(),
      statusMessage: 'started',
      storedMessage: 'started',
      done: Promise.resolve(),
    };
    this.running.set(record.taskId, task);
    task.done = this.work(record, task, tool, args, call).finally(() => {
      this.running.delete(record.taskId);
      slots.release();
    });
    this.keepRenewing();
  }

  private async work(record: TaskRecord, task: Running, tool: ToolDefinition, args: unknown, call: ToolCall) {
    let end: TaskEnd;
    try {
      const result = await callTool(tool, args, {
        ...call,
        // Detached from the request that started it: the task's own signal stops it.
        caller: { ...call.caller, signal: task.stop.signal },
        progressToken: undefined,
        notify: async () => {},
        onProgress: (progress, total) => {
          task.statusMessage = total === undefined ? `${progress} done` : `${progress} of ${total} done`;
        },
      });
      end = this.endOf(task.stop.signal, result as unknown as Record<string, unknown>);
    } catch (error) {
      const message = isMcpdError(error) ? error.message : 'internal error';
      end = { status: 'failed', error: { code: -32603, message }, statusMessage: message };
    }
    try {
      await this.store.finish(record.taskId, end);
      this.signals.publish({ taskId: record.taskId });
    } catch {
      // The store is unreachable: the lease lapses and the task reads as failed, never as working.
    }
  }

  /** How a finished call ends its task: a client's cancel, shutdown, or the tool's result (even an error result). */
  private endOf(signal: AbortSignal, result: Record<string, unknown>): TaskEnd {
    if (signal.aborted && signal.reason === CANCELLED_BY_CLIENT) {
      return { status: 'cancelled', statusMessage: 'cancelled by the client' };
    }
    if (signal.aborted && isMcpdError(signal.reason) && signal.reason.code === 'UNAVAILABLE') {
      return {
        status: 'failed',
        error: { code: -32603, message: signal.reason.message },
        statusMessage: signal.reason.message,
      };
    }
    return { status: 'completed', result, statusMessage: result.isError ? 'finished with an error' : 'finished' };
  }

  private keepRenewing(): void {
    if (this.renewing) return;
    this.renewing = setInterval(() => void this.renew(), Math.max(100, Math.floor(this.settings.leaseMs / 3)));
    this.renewing.unref();
  }

  private async renew(): Promise<void> {
    if (this.running.size === 0) {
      clearInterval(this.renewing);
      this.renewing = undefined;
      return;
    }
    const renewed = [...this.running.entries()].map(([taskId, task]) => ({
      taskId,
      task,
      message: task.statusMessage,
    }));
    try {
      const cancelled = await this.store.renew(
        renewed.map(({ taskId, message }) => ({ taskId, statusMessage: message })),
        this.settings.leaseMs,
      );
      for (const taskId of cancelled) this.running.get(taskId)?.stop.abort(CANCELLED_BY_CLIENT);
      // Progress reaches listen streams at the pace of renewals (a third of a lease), not per chunk.
      for (const { taskId, task, message } of renewed) {
        if (message === task.storedMessage) continue;
        task.storedMessage = message;
        this.signals.publish({ taskId });
      }
    } catch {
      // Unreachable store: renewed next time, or the lease lapses and the task reads as failed.
    }
  }
}

/** What a listener is told about: a change of status or of message (a renewal alone is none). */
const stateKey = (record: TaskRecord) => `${record.status}\0${record.statusMessage ?? ''}`;

function storeUnreachable(): ProtocolFailure {
  return { code: -32603, message: 'the task store is unreachable (Redis); retry later' };
}

function unknownTask(): ProtocolFailure {
  return { code: -32602, message: 'unknown task (it may have expired, or belong to another principal)' };
}
