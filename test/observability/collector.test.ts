import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { REPO } from '../helpers/workspace.js';

/**
 * deploy/otel-collector/config.yaml, checked the way `otelcol validate` would where no collector
 * binary can run (none is installable on the CI machines): only the sections the collector knows,
 * every component defined and used, each of a type the pinned contrib image ships, pipelines in
 * the order the collector's documentation asks for; and agreement with what sends to it (mcpd's
 * compose config) and how compose runs it.
 */

const CONFIG = join(REPO, 'deploy/otel-collector/config.yaml');
const config = parse(readFileSync(CONFIG, 'utf8')) as {
  receivers: Record<string, { protocols?: { http?: { endpoint: string } } }>;
  processors: Record<string, unknown>;
  exporters: Record<string, Record<string, unknown>>;
  extensions: Record<string, { endpoint?: string }>;
  service: {
    extensions: string[];
    pipelines: Record<string, { receivers: string[]; processors: string[]; exporters: string[] }>;
  };
};

/**
 * Component types of otel/opentelemetry-collector-contrib 0.114.0 that this config may use (a
 * subset: the ones worth using here). A type outside it fails the test until it is checked and added.
 */
const KNOWN = {
  receivers: new Set(['otlp']),
  processors: new Set(['memory_limiter', 'batch', 'filter', 'attributes', 'resource']),
  exporters: new Set(['otlp', 'otlphttp', 'debug', 'file']),
  extensions: new Set(['health_check', 'file_storage']),
} as const;
const SIGNALS = new Set(['traces', 'metrics', 'logs']);

/** `type/name` -> `type`. */
const typeOf = (id: string) => id.split('/')[0] as string;

describe('deploy/otel-collector/config.yaml', () => {
  it('has only the collector sections, components of known types, each defined and used', () => {
    expect(Object.keys(config).sort()).toEqual(['exporters', 'extensions', 'processors', 'receivers', 'service']);
    for (const kind of ['receivers', 'processors', 'exporters', 'extensions'] as const) {
      for (const id of Object.keys(config[kind])) {
        expect(KNOWN[kind].has(typeOf(id)), `${kind}: ${id} is not a type the contrib image ships`).toBe(true);
        expect(id, `${kind}: ${id} is a type or type/name`).toMatch(/^[a-z_]+(\/[\w.-]+)?$/);
      }
    }
    const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
    for (const [name, pipeline] of Object.entries(config.service.pipelines)) {
      expect(SIGNALS.has(typeOf(name)), `pipeline ${name} is traces, metrics or logs`).toBe(true);
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const id of pipeline[kind]) {
          expect(Object.keys(config[kind]), `pipeline ${name} uses ${kind} ${id}`).toContain(id);
          used[kind].add(id);
        }
      }
      expect(
        pipeline.receivers.length && pipeline.exporters.length,
        `pipeline ${name} receives and exports`,
      ).toBeTruthy();
      // memory_limiter first (it refuses before anything else spends memory), batch last.
      expect(pipeline.processors[0], `pipeline ${name}`).toBe('memory_limiter');
      expect(pipeline.processors.at(-1), `pipeline ${name}`).toBe('batch');
    }
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      expect([...used[kind]].sort(), `every ${kind} entry is used`).toEqual(Object.keys(config[kind]).sort());
    }
    expect(config.service.extensions.sort()).toEqual(Object.keys(config.extensions).sort());
  });

  it('carries traces and audit logs to the backend without dropping audit records on the way', () => {
    const pipelines = Object.entries(config.service.pipelines);
    expect(pipelines.map(([name]) => typeOf(name)).sort()).toEqual(['logs', 'traces']);
    for (const [, pipeline] of pipelines) expect(pipeline.exporters).toContain('otlphttp/backend');
    const backend = config.exporters['otlphttp/backend'] as {
      endpoint: string;
      retry_on_failure: { enabled: boolean; max_elapsed_time: string };
      sending_queue: { enabled: boolean };
    };
    // Retried with no deadline (the collector's default gives up after 5 minutes), queued meanwhile.
    expect(backend.retry_on_failure).toEqual({ enabled: true, max_elapsed_time: '0s' });
    expect(backend.sending_queue.enabled).toBe(true);
    expect(backend.endpoint).toMatch(/^\$\{env:OTLP_BACKEND_ENDPOINT:-http:\/\/[\w.-]+:\d+\}$/);
  });

  it("is where mcpd's compose config sends spans and audit records, on the port compose reaches it", () => {
    const compose = parse(readFileSync(join(REPO, 'deploy/compose.yaml'), 'utf8'));
    const service = compose.services['otel-collector'];
    expect(service.volumes).toContain('./otel-collector/config.yaml:/etc/otelcol-contrib/config.yaml:ro');
    expect(service.command).toEqual(['--config=/etc/otelcol-contrib/config.yaml']);
    const listen = config.receivers.otlp?.protocols?.http?.endpoint as string;
    const port = listen.split(':').at(-1);
    const raw = parse(readFileSync(join(REPO, 'deploy/compose/mcpd.yaml'), 'utf8'));
    const tracing = new URL(raw.tracing.endpoint);
    const audit = new URL(raw.audit.otlp.endpoint);
    for (const url of [tracing, audit]) {
      expect(url.hostname).toBe('otel-collector');
      expect(url.port).toBe(port);
    }
    // The OTLP/HTTP paths of each signal.
    expect([tracing.pathname, audit.pathname]).toEqual(['/v1/traces', '/v1/logs']);
    // And mcpd accepts that config (audit.otlp, tracing) with its own schema.
    const parsed = parseConfig(
      { ...raw, auth: { mode: 'none' }, server: { port: 0 }, roots: [{ name: 'r', uri: REPO }] },
      join(REPO, 'x.yaml'),
    );
    expect(parsed.audit.otlp?.endpoint).toBe(audit.href);
    expect(parsed.tracing.enabled).toBe(true);
  });
});
