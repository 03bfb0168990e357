import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { port, positiveInt, tlsFiles } from './fields.js';

/** What replicas share: `cluster`. Without `redis`, each process keeps its state in memory, as one replica should. */

const hostPort = z.strictObject({
  host: z.string().min(1).describe('Host name or address.'),
  port: port.default(6379).describe('Port.'),
});

export const redisSchema = z
  .strictObject({
    mode: z
      .enum(['standalone', 'sentinel', 'cluster'])
      .default('standalone')
      .describe(
        'One Redis server (`url`), a Sentinel-managed primary (`nodes` are the sentinels, `sentinelName` the primary), ' +
          'or a Redis Cluster (`nodes` are seed nodes).',
      ),
    url: z
      .string()
      .regex(/^rediss?:\/\/[^/]+(\/\d+)?$/, 'redis://HOST:PORT[/DB], or rediss:// for TLS')
      .refine((url) => !/^rediss?:\/\/[^@/]*:[^@/]*@/.test(url), {
        message: 'no password in the URL (it would be logged): use passwordFile or passwordEnv',
      })
      .optional()
      .describe('Standalone: the server, as redis://HOST:PORT[/DB] (rediss:// for TLS).'),
    nodes: z.array(hostPort).min(1).optional().describe('The sentinels (sentinel mode), or seed nodes (cluster mode).'),
    sentinelName: z.string().min(1).optional().describe('Sentinel: the name of the monitored primary.'),
    username: z.string().min(1).optional().describe('ACL user (Redis 6+); the default user when omitted.'),
    passwordFile: z.string().min(1).optional().describe('File holding the password; relative to the config file.'),
    passwordEnv: z.string().min(1).optional().describe('Environment variable holding the password.'),
    tls: tlsFiles.optional().describe('TLS to Redis (implied by a rediss:// URL).'),
    keyPrefix: z
      .string()
      .regex(/^[\w.:-]{1,64}$/, 'letters, digits and . _ : - only')
      .default(DEFAULTS.redisKeyPrefix)
      .describe('Prefix of every key mcpd writes: several deployments can share one Redis.'),
    connectTimeoutMs: positiveInt.default(DEFAULTS.redisConnectTimeoutMs).describe('Time to connect.'),
    commandTimeoutMs: positiveInt
      .default(DEFAULTS.redisCommandTimeoutMs)
      .describe('Time a command may take before it counts as failed (and `onUnavailable` applies).'),
    required: z
      .boolean()
      .default(false)
      .describe('Report not-ready on /ready while Redis is unreachable, so that the balancer sends calls elsewhere.'),
    onUnavailable: z
      .enum(['local', 'closed'])
      .default('local')
      .describe(
        'While Redis is unreachable: `local` enforces rate limits and per-principal quotas per replica (a principal may ' +
          'get up to the replica count times its limit until Redis is back; counted and logged), `closed` refuses ' +
          'calls that need them (503).',
      ),
  })
  .superRefine((redis, ctx) => {
    if (redis.mode === 'standalone' && !redis.url) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'standalone mode needs a url' });
    }
    if (redis.mode !== 'standalone' && !redis.nodes) {
      ctx.addIssue({ code: 'custom', path: ['nodes'], message: `${redis.mode} mode needs nodes` });
    }
    if (redis.mode === 'sentinel' && !redis.sentinelName) {
      ctx.addIssue({ code: 'custom', path: ['sentinelName'], message: 'sentinel mode needs sentinelName' });
    }
    if (redis.passwordFile && redis.passwordEnv) {
      ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' });
    }
  });

export const clusterSchema = z.strictObject({
  taskTtlMs: positiveInt
    .min(60_000)
    .default(DEFAULTS.taskTtlMs)
    .describe(
      'How long a task (a long call run for a client that declares the Tasks extension) and its result are kept.',
    ),
  redis: redisSchema.optional().describe('Shared state for replicas: rate limits and per-principal quotas.'),
  leaseMs: positiveInt
    .min(1000)
    .default(DEFAULTS.clusterLeaseMs)
    .describe(
      'How long a replica’s claim on shared state (a call’s quota slot) outlives the replica: a replica that dies ' +
        'without releasing frees its slots within this time.',
    ),
});
