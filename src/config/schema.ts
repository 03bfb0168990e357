import * as z from 'zod';
import { authSchema } from './auth.js';
import { clusterSchema } from './cluster.js';
import { databasesSchema } from './databases.js';
import { limitsSchema } from './limits.js';
import {
  auditSchema,
  logSchema,
  metricsSchema,
  reloadSchema,
  resourcesSchema,
  shutdownSchema,
  tracingSchema,
} from './operations.js';
import { accessPolicySchema, grantsSchema, rootsSchema } from './policy.js';
import { configRules } from './rules.js';
import { serverSchema } from './server.js';

/**
 * The one configuration schema, composed of the section schemas (server.ts, auth.ts, policy.ts,
 * limits.ts, operations.ts) with the rules across sections (rules.ts). Defaults are named in
 * defaults.ts; the JSON Schema published in `schema/mcpd.config.schema.json` is generated from it.
 */

const configFields = z.strictObject({
  $schema: z.string().optional(),
  server: serverSchema.prefault({}),
  auth: authSchema.default({ mode: 'none' }),
  grants: grantsSchema,
  accessPolicy: accessPolicySchema.prefault({}),
  roots: rootsSchema,
  databases: databasesSchema,
  limits: limitsSchema.prefault({}),
  audit: auditSchema.prefault({}),
  log: logSchema.prefault({}),
  resources: resourcesSchema.prefault({}),
  shutdown: shutdownSchema.prefault({}),
  reload: reloadSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  tracing: tracingSchema.prefault({}),
  cluster: clusterSchema.prefault({}),
});

export const configSchema = configFields.superRefine(configRules);

/** The config as written (what editors complete). */
export type ConfigInput = z.input<typeof configSchema>;
/** The config after defaults, before roots are resolved against the file system. */
export type ParsedConfig = z.output<typeof configFields>;

export { BUILTIN_EXCLUDES, DEFAULT_SCOPES, DEFAULTS } from './defaults.js';
export { isLoopbackHost } from './server.js';
export type {
  ApiKey,
  AuthConfig,
  Config,
  DatabaseConfig,
  Grant,
  JwtSettings,
  RootConfig,
  TlsMaterial,
} from './types.js';
