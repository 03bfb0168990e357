import type { SharedRedis, SharedThing } from './redis.js';

/**
 * A change to a root's entry, as replicas tell each other: the root by name and the canonical
 * root-relative path, never a host path. Whether it is visible, and to whom, each receiver
 * decides with its own policy and grants.
 */
export interface BusChange {
  readonly root: string;
  readonly relPath: string;
  readonly kind: 'created' | 'changed' | 'deleted';
  readonly isDirectory: boolean;
  /**
   * What the entry is after the change, so that two reports of one change can be told apart from
   * two changes: `gone`, `dir`, `SIZE:MTIME_MS` for a file, or '' when the reporter does not know.
   */
  readonly version: string;
}

/**
 * One path messages travel from where they start to whoever listens: in this process, or on
 * every replica. Changes to roots travel on one (a write through mcpd, the file watcher), and
 * the news that a task changed on another.
 */
export interface Bus<T> {
  publish(message: T): void;
  subscribe(listener: (message: T) => void): () => void;
  close(): Promise<void>;
}

/** The one path changes travel from where they are seen to whoever listens. */
export type ChangeBus = Bus<BusChange>;

/** That a task changed (its status, message or result): listeners read the store for what. */
export interface TaskSignal {
  readonly taskId: string;
}

export type TaskSignals = Bus<TaskSignal>;

/** Listeners of one process; a listener that throws does not starve the others. */
class Listeners<T> {
  private readonly listeners = new Set<(message: T) => void>();

  add(listener: (message: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  deliver(message: T): void {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch {
        // A closed stream's listener; the others still hear.
      }
    }
  }
}

/** One process: publishing is delivering. */
export class InMemoryBus<T> implements Bus<T> {
  private readonly listeners = new Listeners<T>();

  publish(message: T): void {
    this.listeners.deliver(message);
  }

  subscribe(listener: (message: T) => void): () => void {
    return this.listeners.add(listener);
  }

  async close(): Promise<void> {}
}

export class InMemoryChangeBus extends InMemoryBus<BusChange> {}

/** Longest message accepted from a channel: a change is a root name and a path, a signal an id. */
const MAX_MESSAGE_BYTES = 16 * 1024;

/** A message from the channel, or undefined for one that is not ours (another program on it). */
function parsed<T>(message: string, shape: (value: Record<string, unknown>) => T | undefined): T | undefined {
  if (message.length > MAX_MESSAGE_BYTES) return undefined;
  try {
    const value: unknown = JSON.parse(message);
    return value !== null && typeof value === 'object' ? shape(value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function changeOf(value: Record<string, unknown>): BusChange | undefined {
  const { root, relPath, kind, isDirectory, version } = value;
  if (
    typeof root === 'string' &&
    typeof relPath === 'string' &&
    (kind === 'created' || kind === 'changed' || kind === 'deleted') &&
    typeof isDirectory === 'boolean' &&
    typeof version === 'string'
  ) {
    return { root, relPath, kind, isDirectory, version };
  }
  return undefined;
}

function signalOf(value: Record<string, unknown>): TaskSignal | undefined {
  return typeof value.taskId === 'string' ? { taskId: value.taskId } : undefined;
}

/**
 * Every replica on one Redis pub/sub channel. A message published here reaches this process's
 * listeners through the channel too, so each listener hears it by one path only; while Redis
 * cannot take it, it is delivered here directly (a replica's own listeners lose nothing, the
 * others miss it: pub/sub keeps no history). The subscription is held only while someone in this
 * process listens.
 */
export class RedisBus<T> implements Bus<T> {
  private readonly listeners = new Listeners<T>();
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly redis: SharedRedis,
    private readonly channel: string,
    private readonly shape: (value: Record<string, unknown>) => T | undefined,
    private readonly what: SharedThing,
  ) {}

  publish(message: T): void {
    this.redis.publish(this.channel, JSON.stringify(message)).catch(() => {
      this.redis.fellBack(this.what);
      this.listeners.deliver(message);
    });
  }

  subscribe(listener: (message: T) => void): () => void {
    const remove = this.listeners.add(listener);
    this.unsubscribe ??= this.redis.subscribe(this.channel, (text) => {
      const message = parsed(text, this.shape);
      if (message !== undefined) this.listeners.deliver(message);
    });
    return () => {
      remove();
      if (this.listeners.size === 0) {
        void this.unsubscribe?.();
        this.unsubscribe = undefined;
      }
    };
  }

  async close(): Promise<void> {
    await this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

export class RedisChangeBus extends RedisBus<BusChange> {
  constructor(redis: SharedRedis, channel: string) {
    super(redis, channel, changeOf, 'changes');
  }
}

export class RedisTaskSignals extends RedisBus<TaskSignal> {
  constructor(redis: SharedRedis, channel: string) {
    super(redis, channel, signalOf, 'tasks');
  }
}
