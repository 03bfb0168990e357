import { createRequire } from 'node:module';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { RedisSettings } from '../config/types.js';
import type { Logger } from '../ops/logger.js';

/** The client mcpd's shared state uses: one connection (or one cluster client) per process. */
export type RedisClient = Redis | Cluster;

/** Reconnection waits: doubling from 50 ms, at most 2 s, forever (Redis coming back is the normal end). */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 10), 2000);
}

/**
 * A client from the settings. Commands fail at once while disconnected (no offline queue, one
 * attempt): every caller has a fallback that is better than a request stuck behind a reconnect.
 * The password never reaches a log line: it is not in the URL (the schema refuses one there), and
 * connection errors are logged by message only.
 */
export function createRedis(settings: RedisSettings, logger: Logger): RedisClient {
  // Loaded only when a config names Redis (a single replica never pays for the client), from
  // node_modules rather than the bundle.
  const { Cluster, Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  const common: RedisOptions = {
    ...(settings.username ? { username: settings.username } : {}),
    ...(settings.password !== null ? { password: settings.password } : {}),
    ...(settings.tls ? { tls: { ...settings.tls } } : {}),
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    retryStrategy: reconnectDelayMs,
    // Tell Redis who is connecting: CLIENT LIST then names each replica's connection.
    connectionName: 'mcpd',
  };
  let client: RedisClient;
  if (settings.mode === 'cluster') {
    const options: ClusterOptions = {
      redisOptions: common,
      keyPrefix: settings.keyPrefix,
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelayMs,
      lazyConnect: true,
    };
    client = new Cluster(
      (settings.nodes ?? []).map((node) => ({ host: node.host, port: node.port })),
      options,
    );
  } else if (settings.mode === 'sentinel') {
    client = new Redis({
      ...common,
      keyPrefix: settings.keyPrefix,
      sentinels: (settings.nodes ?? []).map((node) => ({ host: node.host, port: node.port })),
      name: settings.sentinelName as string,
      sentinelRetryStrategy: reconnectDelayMs,
      ...(settings.tls ? { enableTLSForSentinelMode: true } : {}),
    });
  } else {
    const url = new URL(settings.url as string);
    client = new Redis({
      ...common,
      keyPrefix: settings.keyPrefix,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 6379),
      db: Number(url.pathname.slice(1) || 0),
    });
  }
  let down = false;
  client.on('error', (error: Error) => {
    // ioredis reports every failed reconnect; one line per outage is what an operator needs.
    if (down) return;
    down = true;
    logger.warn(
      { err: { message: error.message } },
      'redis unreachable; shared limits fall back (cluster.redis.onUnavailable)',
    );
  });
  client.on('ready', () => {
    if (down) logger.info('redis reachable again');
    down = false;
  });
  return client;
}

/** What replicas share through Redis. */
export type SharedThing = 'rate' | 'concurrency' | 'changes' | 'tasks';

/** What a Redis command did, for the metrics. */
export interface RedisObserver {
  command(name: string, outcome: 'ok' | 'error', seconds: number): void;
  /** A limit enforced without Redis (`local`) or refused for want of it (`closed`). */
  fallback(limit: SharedThing, mode: 'local' | 'closed'): void;
  /** Runs one command in a span of its own (a client span under the request's). */
  traced<T>(name: string, command: () => Promise<T>): Promise<T>;
}

/**
 * Scripts mcpd runs in Redis, by name: the Lua, and how many keys it takes (one unless said). A
 * script of several keys names them with one hash tag, so they work on a Redis Cluster too.
 */
export interface Scripts {
  readonly [name: string]: string | { readonly lua: string; readonly keys: number };
}

type ScriptCall = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/**
 * The one Redis client of a process, with mcpd's scripts defined on it: every command goes through
 * `run`, which counts it (by name and outcome) and times it, so the metrics show what Redis costs
 * a call and when it fails.
 */
export class SharedRedis {
  private readonly subscribers = new Set<RedisClient>();

  constructor(
    private readonly client: RedisClient,
    private readonly observer: RedisObserver,
    readonly settings: RedisSettings,
  ) {}

  /** A client with `scripts` defined, connecting in the background (failures are retried with backoff). */
  static async connect(
    settings: RedisSettings,
    scripts: Scripts,
    observer: RedisObserver,
    logger: Logger,
  ): Promise<SharedRedis> {
    const client = createRedis(settings, logger);
    for (const [name, script] of Object.entries(scripts)) {
      const { lua, keys } = typeof script === 'string' ? { lua: script, keys: 1 } : script;
      client.defineCommand(name, { numberOfKeys: keys, lua });
    }
    // Not awaited: a replica starts, and serves with its fallback, while Redis is away.
    client.connect().catch(() => {});
    return new SharedRedis(client, observer, settings);
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Runs a defined script on `key` (or keys; prefixed by the client). */
  script(name: string, key: string | readonly string[], ...args: (string | number)[]): Promise<unknown> {
    const keys = typeof key === 'string' ? [key] : key;
    return this.run(
      name,
      () => (this.client as unknown as Record<string, ScriptCall>)[name]?.(...keys, ...args) as Promise<unknown>,
    );
  }

  /** Removes members from a sorted set. */
  zrem(key: string, members: readonly string[]): Promise<unknown> {
    return this.run('zrem', () => this.client.zrem(key, ...members));
  }

  /** Publishes on a pub/sub channel (not prefixed by the client: `channel` carries the prefix). */
  publish(channel: string, message: string): Promise<unknown> {
    return this.run('publish', () => this.client.publish(channel, message));
  }

  /**
   * Listens on a channel over a connection of its own (a subscribed connection takes no other
   * command), resubscribed by the client after a reconnect. Returns how to stop.
   */
  subscribe(channel: string, onMessage: (message: string) => void): () => Promise<void> {
    const subscriber = this.client.duplicate();
    subscriber.on('error', () => {
      // Reported once per outage by the main connection's handler.
    });
    subscriber.on('message', (from: string, message: string) => {
      if (from === channel) onMessage(message);
    });
    // On every connection, the first and each after an outage (the first may come only later).
    subscriber.on('ready', () => {
      this.observer
        .traced('subscribe', () => this.counted('subscribe', () => subscriber.subscribe(channel)))
        .catch(() => {});
    });
    this.subscribers.add(subscriber);
    subscriber.connect().catch(() => {});
    return async () => {
      this.subscribers.delete(subscriber);
      subscriber.disconnect();
    };
  }

  fellBack(thing: SharedThing): void {
    this.observer.fallback(thing, thing === 'changes' || thing === 'tasks' ? 'local' : this.settings.onUnavailable);
  }

  private run<T>(name: string, command: () => Promise<T>): Promise<T> {
    return this.observer.traced(name, () =>
      this.counted(name, () => (this.ready ? command() : Promise.reject(new Error('redis is not connected')))),
    );
  }

  private async counted<T>(name: string, command: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await command();
      this.observer.command(name, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.observer.command(name, 'error', (performance.now() - started) / 1000);
      throw error;
    }
  }

  /** Closes the connection: QUIT when connected (what was sent is answered first), else at once. */
  async close(): Promise<void> {
    for (const subscriber of this.subscribers) subscriber.disconnect();
    this.subscribers.clear();
    if (this.ready) await this.client.quit().catch(() => this.client.disconnect());
    else this.client.disconnect();
  }
}
