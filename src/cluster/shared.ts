import type { Config } from '../config/schema.js';
import type { Logger } from '../ops/logger.js';
import {
  type ChangeBus,
  InMemoryBus,
  InMemoryChangeBus,
  RedisChangeBus,
  RedisTaskSignals,
  type TaskSignal,
  type TaskSignals,
} from './changeBus.js';
import {
  ADMIT_SCRIPT,
  type CallQuota,
  LocalCallQuota,
  QUOTA_ACQUIRE_SCRIPT,
  QUOTA_RENEW_SCRIPT,
  RedisCallQuota,
} from './concurrency.js';
import { InMemoryRateLimiter, RATE_SCRIPT, type RateLimiter, RedisRateLimiter } from './rateLimiter.js';
import { type RedisObserver, SharedRedis } from './redis.js';
import { InMemoryTaskStore, RedisTaskStore, TASK_SCRIPTS, type TaskStore } from './tasks.js';

/**
 * What replicas share, built from `cluster`: a principal's rate and its calls in progress. With
 * no Redis configured both live in this process, which is exactly right for one replica.
 */
export interface SharedState {
  readonly rateLimiter: RateLimiter;
  readonly calls: CallQuota;
  /** How changes reach listeners: in this process, or on every replica. */
  readonly changes: ChangeBus;
  /** Where tasks live: in this process, or where every replica finds them. */
  readonly tasks: TaskStore;
  /** How the news that a task changed reaches listen streams: in this process, or on every replica. */
  readonly taskSignals: TaskSignals;
  /** Why this replica should not take work on account of shared state (Redis required and away), or null. */
  notReadyReason(): string | null;
  /** Whether Redis is configured and connected: null without Redis. */
  readonly redisReady: boolean | null;
  close(): Promise<void>;
}

export async function sharedState(
  config: Config,
  deps: { readonly logger: Logger; readonly observer: RedisObserver; readonly replica: string },
): Promise<SharedState> {
  const settings = config.cluster.redis;
  if (!settings) {
    const rateLimiter = new InMemoryRateLimiter();
    return {
      rateLimiter,
      calls: new LocalCallQuota(rateLimiter),
      changes: new InMemoryChangeBus(),
      tasks: new InMemoryTaskStore(),
      taskSignals: new InMemoryBus<TaskSignal>(),
      notReadyReason: () => null,
      redisReady: null,
      close: async () => {},
    };
  }
  const redis = await SharedRedis.connect(
    settings,
    {
      mcpdRate: RATE_SCRIPT,
      mcpdAdmit: ADMIT_SCRIPT,
      mcpdQuotaAcquire: QUOTA_ACQUIRE_SCRIPT,
      mcpdQuotaRenew: QUOTA_RENEW_SCRIPT,
      ...TASK_SCRIPTS,
    },
    deps.observer,
    deps.logger,
  );
  const rateLimiter = new RedisRateLimiter(redis);
  const calls = new RedisCallQuota(redis, deps.replica, config.cluster.leaseMs, rateLimiter);
  const changes = new RedisChangeBus(redis, `${settings.keyPrefix}changes`);
  const taskSignals = new RedisTaskSignals(redis, `${settings.keyPrefix}tasks`);
  return {
    rateLimiter,
    calls,
    changes,
    tasks: new RedisTaskStore(redis),
    taskSignals,
    notReadyReason: () =>
      settings.required && !redis.ready ? 'redis (cluster.redis, required) is not reachable' : null,
    get redisReady() {
      return redis.ready;
    },
    close: async () => {
      calls.close();
      await Promise.all([changes.close(), taskSignals.close()]);
      await redis.close();
    },
  };
}
