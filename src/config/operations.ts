import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { port, positiveInt } from './fields.js';

/** Running the process: `audit`, `log`, `resources`, `shutdown`, `metrics`, `tracing` and `reload`. */

export const auditRotateSchema = z.strictObject({
  maxBytes: positiveInt
    .min(4096)
    .optional()
    .describe('Begin a new file once the current one holds this many bytes; a record is never split.'),
  interval: z
    .enum(['hourly', 'daily'])
    .optional()
    .describe('Begin a new file with the first record of each UTC hour or day.'),
});

export const auditOtlpSchema = z.strictObject({
  endpoint: z
    .url({ protocol: /^https?$/ })
    .describe('OTLP/HTTP logs endpoint of a collector, e.g. http://otel-collector:4318/v1/logs.'),
  headers: z
    .record(z.string().min(1), z.string())
    .default({})
    .describe('Headers sent with every export (OTEL_EXPORTER_OTLP_LOGS_HEADERS is honoured too, for secrets).'),
  timeoutMs: positiveInt.min(100).default(10_000).describe('How long one export may take, retries included.'),
  maxQueueRecords: positiveInt
    .default(10_000)
    .describe(
      'Records waiting for the collector past which mcpd stops serving file and database operations (not ready) until it catches up.',
    ),
});

export const auditSchema = z.strictObject({
  sink: z
    .enum(['stderr', 'stdout', 'file'])
    .default('stderr')
    .describe('Where audit lines go; `stdout` only with the HTTP transport (over stdio it carries the protocol).'),
  path: z
    .string()
    .min(1)
    .optional()
    .describe('Audit file (append-only); relative paths are resolved against the config file.'),
  hmacKeyFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding a key (at least 32 bytes) that makes the record chain an HMAC: whoever can write the log cannot recompute it.',
    ),
  hmacKeyEnv: z.string().min(1).optional().describe('Environment variable holding that key instead.'),
  rotate: auditRotateSchema.optional().describe('Rotation of the audit file (sink `file`); none by default.'),
  otlp: auditOtlpSchema
    .optional()
    .describe('Also ship every record to an OpenTelemetry collector as an OTLP log record.'),
});

export const logSchema = z.strictObject({
  level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Lowest level logged.'),
  format: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe(
      'How log lines are written to stderr: "json" (one JSON object a line, for collectors), "pretty" (readable lines ' +
        'for a person), or "auto": pretty when stderr is a terminal, JSON otherwise.',
    ),
});

export const resourcesSchema = z.strictObject({
  pageSize: positiveInt.max(1000).default(DEFAULTS.resourcePageSize).describe('Resources per `resources/list` page.'),
  watch: z.boolean().default(true).describe('Watch roots for changes while a client listens for resource updates.'),
  watchDebounceMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.watchDebounceMs)
    .describe('Collapses bursts of file-system events into one notification.'),
});

export const shutdownSchema = z.strictObject({
  gracePeriodMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.shutdownGraceMs)
    .describe('How long in-flight requests may run after SIGTERM/SIGINT before they are cancelled.'),
});

export const metricsSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Prometheus metrics for `serve`; `false` makes every instrument a no-op.'),
  path: z
    .string()
    .regex(/^\/[\w./-]*$/, 'an absolute URL path')
    .default('/metrics')
    .describe('URL path of the metrics.'),
  port: port
    .optional()
    .describe(
      'Serve metrics on this port alone, unauthenticated (for Prometheus). Without it they are served on the main port, ' +
        'behind the same authentication as /mcp.',
    ),
  host: z.string().min(1).optional().describe('Bind address of the metrics port; server.host when omitted.'),
});

export const tracingSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('OpenTelemetry spans for `serve`, exported over OTLP/HTTP.'),
  endpoint: z
    .url({ protocol: /^https?$/ })
    .default('http://127.0.0.1:4318/v1/traces')
    .describe('OTLP/HTTP traces endpoint.'),
  sampleRatio: z
    .number()
    .min(0)
    .max(1)
    .default(1)
    .describe('Share of new traces sampled; a parent decision is always followed.'),
  serviceName: z.string().min(1).default('mcpd').describe('The `service.name` resource attribute.'),
});

export const reloadSchema = z.strictObject({
  watchConfig: z.boolean().default(false).describe('Reload when the config file changes, as on SIGHUP.'),
  debounceMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.reloadDebounceMs)
    .describe('Changes within this interval cause one reload.'),
});
