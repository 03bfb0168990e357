import { execFileSync, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modernHttpClient } from '../helpers/clients.js';
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { requireCommand } from '../helpers/tools.js';
import { until, WaitTimeout } from '../helpers/wait.js';
import { demoCopy, REPO } from '../helpers/workspace.js';

const DEPLOY = join(REPO, 'deploy/prometheus');

/** The metric names a PromQL expression refers to (functions, keywords and label names removed). */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'le', 'inf', 'nan']);
  const names = [...stripped.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1] as string);
  return [...new Set(names.filter((name) => !keywords.has(name.toLowerCase())))];
}

/** Series names in an exposition, with the _bucket/_sum/_count of histograms. */
function exported(exposition: string): Set<string> {
  const names = new Set<string>(['up']);
  // Declared families count even before their first sample (a labelled counter nobody has hit yet).
  for (const [, name, type] of exposition.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) {
    names.add(name as string);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

describe('metrics, checked by a real Prometheus', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let prometheus: PrometheusServer;
  let metricsUrl: URL;

  beforeAll(async () => {
    requireCommand('promtool');
    demo = await demoCopy();
    server = await startServer(await demo.configWith('observed.yaml', 'metrics: { port: 0, host: 127.0.0.1 }\n'));
    metricsUrl = new URL(server.app.metricsUrl as string);
    prometheus = await startPrometheus(join(demo.dir, 'prometheus'), [
      { host: metricsUrl.host, path: metricsUrl.pathname },
    ]);
  });
  afterAll(async () => {
    await prometheus?.stop();
    await server?.close();
    await demo?.cleanup();
  });

  it('passes promtool check config, check rules and test rules on deploy/prometheus, and amtool on deploy/alertmanager', () => {
    for (const args of [
      ['check', 'config', 'prometheus.yml'],
      ['check', 'rules', 'rules/mcpd-alerts.yml', 'rules/mcpd-slo.yml'],
      ['test', 'rules', 'tests/mcpd-alerts.test.yml', 'tests/mcpd-slo.test.yml'],
    ]) {
      const run = spawnSync('promtool', args, { cwd: DEPLOY, encoding: 'utf8' });
      expect(run.status, `promtool ${args.join(' ')}\n${run.stdout}${run.stderr}`).toBe(0);
    }
    const amtool = spawnSync(
      requireCommand('amtool'),
      ['check-config', join(REPO, 'deploy/alertmanager/alertmanager.yml')],
      {
        encoding: 'utf8',
      },
    );
    expect(amtool.status, amtool.stdout + amtool.stderr).toBe(0);
  });

  it('gives every alert a summary, a description and a runbook link to a section that exists', async () => {
    const runbooks = await readFile(join(REPO, 'docs/runbooks.md'), 'utf8');
    const sections = new Set([...runbooks.matchAll(/^## (\S+)$/gm)].map((m) => (m[1] as string).toLowerCase()));
    const alerts: string[] = [];
    for (const file of ['rules/mcpd-alerts.yml', 'rules/mcpd-slo.yml']) {
      const text = await readFile(join(DEPLOY, file), 'utf8');
      // Each alert's block: from its name to the next rule.
      for (const block of text.split(/\n\s+- (?=alert:|record:)/).filter((b) => b.startsWith('alert:'))) {
        const name = /^alert: (\w+)/.exec(block)?.[1] as string;
        alerts.push(name);
        expect(block, name).toMatch(/\n\s+summary: "[^"]+"/);
        expect(block, name).toMatch(/\n\s+description: "[^"]+"/);
        const link = /\n\s+runbook_url: "docs\/runbooks\.md#([a-z0-9-]+)"/.exec(block)?.[1];
        expect(link, `${name} has a runbook_url`).toBe(name.toLowerCase());
        expect(sections.has(link as string), `docs/runbooks.md has a section ${name}`).toBe(true);
      }
    }
    expect(alerts).toHaveLength(12);
    // And no section runs on for an alert that no longer exists.
    expect([...sections].sort()).toEqual(alerts.map((a) => a.toLowerCase()).sort());
  });

  it('exposes metrics that promtool check metrics accepts, with bounded labels', async () => {
    const client = await modernHttpClient(server.url);
    await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } });
    await client.close();
    const exposition = await (await fetch(metricsUrl)).text();
    // Current at scrape time, though nothing has probed /ready.
    expect(exposition).toMatch(/^mcpd_ready 1$/m);
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    expect(exposition).toMatch(/^# TYPE mcp_server_operation_duration_seconds histogram$/m);
    expect(exposition).toContain(
      'mcp_server_operation_duration_seconds_bucket{le="300",mcp_method_name="tools/call",gen_ai_tool_name="read_file",error_type=""}',
    );
    for (const name of [
      'mcpd_requests_in_flight',
      'mcpd_policy_decisions_total',
      'mcpd_file_bytes_total',
      'mcpd_build_info',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(exposition, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    }
    // No path, URI or principal ever becomes a label value.
    expect(exposition).not.toContain('README.md');
    expect(exposition).not.toContain('file://');
    expect(exposition).not.toContain('anonymous');
  });

  it('counts each failed request under its catalogue code, or what the wire says when it has none', async () => {
    const errors = async () =>
      new Map(
        [...(await (await fetch(metricsUrl)).text()).matchAll(/^mcpd_request_errors_total\{([^}]*)\} (\d+)$/gm)].map(
          (m) => [m[1] as string, Number(m[2])],
        ),
      );
    const before = await errors();
    // Refusals of a tool call and of a resource read (catalogue codes), and an unknown method (an HTTP
    // status only, under the bounded method label).
    await messagesOf(await postModern(server.url, 'tools/call', { name: 'read_file', arguments: { path: '.env' } }));
    await messagesOf(await postModern(server.url, 'resources/read', { uri: 'file:///nowhere/at/all' }));
    const unknown = await postModern(server.url, 'no/such/method');
    await unknown.arrayBuffer();
    const after = await errors();
    const grew = [...after].filter(([labels, count]) => count > (before.get(labels) ?? 0)).map(([labels]) => labels);
    expect(grew.sort()).toEqual(
      [
        'mcp_method_name="tools/call",code="NOT_FOUND_OR_DENIED"',
        'mcp_method_name="resources/read",code="NOT_FOUND_OR_DENIED"',
        `mcp_method_name="other",code="HTTP_${unknown.status}"`,
      ].sort(),
    );
    expect(unknown.status).toBe(404);
    // The faults the availability objective counts are there from the start, at 0 until one happens.
    for (const code of ['INTERNAL', 'UNAVAILABLE', 'TIMEOUT']) {
      expect(after.get(`mcp_method_name="tools/call",code="${code}"`), code).toBe(0);
    }
  });

  it('shows request rate, a tools/call latency quantile and a denied read through the Prometheus API', async () => {
    const client = await modernHttpClient(server.url, 'metrics-driver');
    // rate() needs two scrapes that saw the counter at different values: keep calling (30 times at
    // least) until Prometheus has scraped it between the first call and the last; the next scrape
    // then sees it higher.
    const calls =
      'mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="get_file_info"}';
    let made = 0;
    let scraped = 0;
    await until(
      async () => {
        await client.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } });
        made += 1;
        const [sample] = await prometheus.query(calls);
        scraped = sample ? Number(sample.value[1]) : 0;
        return made >= 30 && scraped > 0 && scraped < made;
      },
      {
        what: 'a scrape between the first get_file_info call and the last',
        timeoutMs: 30_000,
        intervalMs: 50,
        describe: () => `${made} calls made, ${scraped} scraped`,
      },
    );
    const denied = (await client.callTool({ name: 'read_file', arguments: { path: '.env' } })) as { isError?: boolean };
    expect(denied.isError).toBe(true);
    await client.close();

    // The value once it is positive (or, after 30 s, whatever it is, for the assertion to show).
    const value = async (expr: string): Promise<number> => {
      let number = Number.NaN;
      await until(
        async () => {
          const [sample] = await prometheus.query(expr);
          number = sample ? Number(sample.value[1]) : Number.NaN;
          return number > 0;
        },
        { what: expr, timeoutMs: 30_000, intervalMs: 250 },
      ).catch((error: unknown) => {
        if (!(error instanceof WaitTimeout)) throw error;
      });
      return number;
    };
    expect(
      await value('sum(rate(mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call"}[1m]))'),
    ).toBeGreaterThan(0);
    expect(
      await value(
        'histogram_quantile(0.9, sum by (le) (rate(mcp_server_operation_duration_seconds_bucket{mcp_method_name="tools/call"}[1m])))',
      ),
    ).toBeGreaterThan(0);
    expect(
      await value('sum(mcpd_policy_decisions_total{decision="deny", root="MCP Demo Project", operation="read"})'),
    ).toBe(1);
  }, 60_000);

  it('has a Grafana dashboard whose every query parses and names only metrics mcpd exports', async () => {
    const dashboard = JSON.parse(await readFile(join(REPO, 'deploy/grafana/mcpd-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
      templating: { list: { name: string; query?: { query?: string } }[] };
    };
    const names = exported(await (await fetch(metricsUrl)).text());
    const expressions = dashboard.panels.flatMap((panel) =>
      panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })),
    );
    expect(expressions.length).toBeGreaterThanOrEqual(15);
    for (const { panel, expr } of expressions) {
      const concrete = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
      await expect(prometheus.query(concrete), `${panel}: ${expr}`).resolves.toBeDefined();
      for (const name of metricNames(concrete)) expect(names.has(name), `${panel} refers to ${name}`).toBe(true);
    }
    const replica = dashboard.templating.list.find((variable) => variable.name === 'instance');
    expect(replica?.query?.query).toBe('label_values(mcpd_build_info, instance)');
    // The alert rules too name only exported metrics.
    const rules = execFileSync('promtool', ['check', 'rules', '--lint=none', join(DEPLOY, 'rules/mcpd-alerts.yml')], {
      encoding: 'utf8',
    });
    expect(rules).toContain('SUCCESS: 8 rules found');
    const ruleText = await readFile(join(DEPLOY, 'rules/mcpd-alerts.yml'), 'utf8');
    for (const [, expr] of ruleText.matchAll(/expr: (?:\|\n)?([\s\S]*?)\n\s+(?:for|labels):/g)) {
      for (const name of metricNames(expr as string))
        expect(names.has(name), `alert rule refers to ${name}`).toBe(true);
    }
    // The SLO rules name exported metrics, or the series they record themselves.
    const sloText = await readFile(join(DEPLOY, 'rules/mcpd-slo.yml'), 'utf8');
    const recorded = new Set([...sloText.matchAll(/record: (\S+)/g)].map((m) => m[1] as string));
    const functions = new Set(['vector', 'scalar']);
    let checked = 0;
    for (const [, expr] of sloText.matchAll(
      /expr: (?:\|\n)?([\s\S]*?)\n\s+(?:labels|- record|- alert|- name|annotations):/g,
    )) {
      for (const name of metricNames(expr as string)) {
        if (functions.has(name)) continue;
        checked += 1;
        expect(names.has(name) || recorded.has(name), `SLO rule refers to ${name}`).toBe(true);
      }
    }
    expect(checked).toBeGreaterThan(20);
  });
});
