import type { SharedRedis } from './redis.js';

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

type Listener = (change: BusChange) => void;

/**
 * The one path changes travel from where they are seen (a write through mcpd, the file watcher)
 * to whoever listens: in this process, or on every replica.
 */
export interface ChangeBus {
  publish(change: BusChange): void;
  subscribe(listener: Listener): () => void;
  close(): Promise<void>;
}

/** Listeners of one process; a listener that throws does not starve the others. */
class Listeners {
  private readonly listeners = new Set<Listener>();

  add(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  deliver(change: BusChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch {
        // A closed stream's listener; the others still hear.
      }
    }
  }
}

/** One process: publishing is delivering. */
export class InMemoryChangeBus implements ChangeBus {
  private readonly listeners = new Listeners();

  publish(change: BusChange): void {
    this.listeners.deliver(change);
  }

  subscribe(listener: Listener): () => void {
    return this.listeners.add(listener);
  }

  async close(): Promise<void> {}
}

/** Longest message accepted from the channel: a change is a root name and a path. */
const MAX_MESSAGE_BYTES = 16 * 1024;

function parseChange(message: string): BusChange | undefined {
  if (message.length > MAX_MESSAGE_BYTES) return undefined;
  try {
    const value = JSON.parse(message) as Partial<BusChange>;
    if (
      typeof value.root === 'string' &&
      typeof value.relPath === 'string' &&
      (value.kind === 'created' || value.kind === 'changed' || value.kind === 'deleted') &&
      typeof value.isDirectory === 'boolean' &&
      typeof value.version === 'string'
    ) {
      const { root, relPath, kind, isDirectory, version } = value;
      return { root, relPath, kind, isDirectory, version };
    }
  } catch {
    // Not ours: another program on the channel.
  }
  return undefined;
}

/**
 * Every replica on one Redis pub/sub channel. A change published here reaches this process's
 * listeners through the channel too, so each listener hears it by one path only; while Redis
 * cannot take it, it is delivered here directly (a replica's own listeners lose nothing, the
 * others miss it: pub/sub keeps no history). The subscription is held only while someone in this
 * process listens.
 */
export class RedisChangeBus implements ChangeBus {
  private readonly listeners = new Listeners();
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly redis: SharedRedis,
    private readonly channel: string,
  ) {}

  publish(change: BusChange): void {
    this.redis.publish(this.channel, JSON.stringify(change)).catch(() => {
      this.redis.fellBack('changes');
      this.listeners.deliver(change);
    });
  }

  subscribe(listener: Listener): () => void {
    const remove = this.listeners.add(listener);
    this.unsubscribe ??= this.redis.subscribe(this.channel, (message) => {
      const change = parseChange(message);
      if (change) this.listeners.deliver(change);
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
