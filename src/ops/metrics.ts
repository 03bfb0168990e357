import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * mcpd's Prometheus metrics. MCP request metrics follow the OpenTelemetry MCP semantic
 * conventions in their Prometheus form (`mcp.server.operation.duration` becomes
 * `mcp_server_operation_duration_seconds`, attributes become snake_case labels); the rest are
 * mcpd's own, prefixed `mcpd_`. No label ever carries a path, a URI or a principal: every label
 * value comes from a closed set or from the configuration (root names).
 */

/** The conventions' advised buckets for mcp.server.operation.duration, in seconds. */
export const OPERATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

/** Reasons a request is turned away before MCP sees it. */
export type RejectionReason =
  | 'rate_limited'
  | 'concurrency'
  | 'streams'
  | 'draining'
  | 'body_too_large'
  | 'host'
  | 'origin'
  | 'token_in_query'
  | 'auth_flood'
  | 'shared_state';

/** Failures that are faults of the server, not answers to the client (deploy/prometheus/rules/mcpd-slo.yml). */
const SERVER_FAULT_CODES = ['INTERNAL', 'UNAVAILABLE', 'TIMEOUT'] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly operationDuration: Histogram<'mcp_method_name' | 'gen_ai_tool_name' | 'error_type'>;
  readonly requestErrors: Counter<'mcp_method_name' | 'code'>;
  readonly inFlight: Gauge;
  readonly policyDecisions: Counter<'root' | 'operation' | 'decision'>;
  readonly fileBytes: Counter<'direction'>;
  readonly rejected: Counter<'reason'>;
  readonly authFailures: Counter<'reason'>;
  readonly sseStreams: Gauge;
  readonly ready: Gauge;
  readonly memoryLimit: Gauge;
  readonly redisCommands: Histogram<'command' | 'outcome'>;
  readonly sharedFallbacks: Counter<'limit' | 'mode'>;
  private readiness: (() => Promise<boolean>) | undefined;

  /** Where mcpd_ready comes from: the same check that answers /ready. */
  observeReadiness(source: () => Promise<boolean>): void {
    this.readiness = source;
  }

  /** With `enabled` false nothing is recorded: every instrument is a no-op (the baseline of the benchmark). */
  constructor(
    build: { version: string; commit: string; memoryLimitBytes: number | null },
    readonly enabled = true,
  ) {
    const registers = enabled ? [this.registry] : [];
    this.operationDuration = new Histogram({
      name: 'mcp_server_operation_duration_seconds',
      help: 'Duration of MCP requests handled by the server (OpenTelemetry mcp.server.operation.duration).',
      labelNames: ['mcp_method_name', 'gen_ai_tool_name', 'error_type'],
      buckets: OPERATION_BUCKETS,
      registers,
    });
    this.requestErrors = new Counter({
      name: 'mcpd_request_errors_total',
      help: 'MCP requests that failed, by method and catalogue code.',
      labelNames: ['mcp_method_name', 'code'],
      registers,
    });
    // The faults the availability objective counts exist at 0 from the start: a series that first
    // appears already at 10 shows Prometheus no increase, and a first burst would go unseen by
    // rate() (the alerting test caught it).
    for (const code of SERVER_FAULT_CODES) this.requestErrors.inc({ mcp_method_name: 'tools/call', code }, 0);
    this.inFlight = new Gauge({ name: 'mcpd_requests_in_flight', help: 'MCP requests being served.', registers });
    this.policyDecisions = new Counter({
      name: 'mcpd_policy_decisions_total',
      help: 'Policy decisions by root, operation and decision (allow or deny).',
      labelNames: ['root', 'operation', 'decision'],
      registers,
    });
    this.fileBytes = new Counter({
      name: 'mcpd_file_bytes_total',
      help: 'Bytes read from or written to workspace files.',
      labelNames: ['direction'],
      registers,
    });
    this.rejected = new Counter({
      name: 'mcpd_requests_rejected_total',
      help: 'Requests turned away before reaching MCP, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.authFailures = new Counter({
      name: 'mcpd_auth_failures_total',
      help: 'Authentication and authorisation failures, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.sseStreams = new Gauge({ name: 'mcpd_sse_streams_open', help: 'Open SSE response streams.', registers });
    const readiness = () => this.readiness;
    this.ready = new Gauge({
      name: 'mcpd_ready',
      help: 'Whether mcpd is ready to take work (1) or not (0), as /ready would answer at scrape time.',
      registers,
      // Evaluated when scraped, so the value is current even where nothing probes /ready.
      async collect() {
        const source = readiness();
        if (source) this.set((await source()) ? 1 : 0);
      },
    });
    this.redisCommands = new Histogram({
      name: 'mcpd_redis_command_duration_seconds',
      help: 'Redis commands of the shared state (rate limits, quotas), by command and outcome (ok or error).',
      labelNames: ['command', 'outcome'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.sharedFallbacks = new Counter({
      name: 'mcpd_shared_limit_fallbacks_total',
      help: 'Limits decided without Redis while it was unreachable: enforced by this replica (local) or refused (closed).',
      labelNames: ['limit', 'mode'],
      registers,
    });
    this.memoryLimit = new Gauge({
      name: 'mcpd_memory_limit_bytes',
      help: 'Memory limit of the container mcpd runs in (0 when there is none).',
      registers,
    });
    this.memoryLimit.set(build.memoryLimitBytes ?? 0);
    if (!enabled) {
      for (const key of [
        'operationDuration',
        'inFlight',
        'policyDecisions',
        'fileBytes',
        'rejected',
        'authFailures',
        'sseStreams',
        'ready',
        'redisCommands',
        'sharedFallbacks',
      ] as const) {
        (this as unknown as Record<string, unknown>)[key] = NOOP_INSTRUMENT;
      }
      return;
    }
    const buildInfo = new Gauge({
      name: 'mcpd_build_info',
      help: 'Build of the running mcpd (always 1).',
      labelNames: ['version', 'commit'],
      registers,
    });
    buildInfo.set({ version: build.version, commit: build.commit }, 1);
    // Process and Node metrics: CPU, RSS, heap, event-loop lag, handles.
    collectDefaultMetrics({ register: this.registry });
    // Gauges named *_total break the exposition conventions (promtool check metrics); their
    // un-suffixed siblings carry the same numbers by type, and sum() gives the totals.
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      this.registry.removeSingleMetric(name);
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

const NOOP_INSTRUMENT = { inc() {}, dec() {}, set() {}, observe() {} };

export { rootLabel } from './labels.js';
