import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAlertmanager, startWebhookReceiver, type WebhookReceiver } from '../helpers/alertmanager.js';
import { errorCode, modernHttpClient } from '../helpers/clients.js';
import { type LogReceiver, startLogReceiver } from '../helpers/otlp.js';
import { freePort } from '../helpers/ports.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { until } from '../helpers/wait.js';
import { demoCopy, REPO } from '../helpers/workspace.js';

/**
 * Alerts that reach someone, end to end with the real components: two mcpd replicas scraped by
 * Debian's Prometheus, evaluating deploy/prometheus's rules, sending to Debian's Alertmanager with
 * deploy/alertmanager's routing, which posts to a webhook. A replica killed is an alert at the
 * webhook with its labels and annotations (summary, runbook link); started again, a resolved one.
 *
 * Two things are changed from the deployed files, for time only: every `for:` is one second
 * (McpdTargetDown waits 2 minutes in production), and Alertmanager groups for one second (30 s).
 */

const deployed = (path: string) => readFile(join(REPO, 'deploy', path), 'utf8');

describe('alerting, Prometheus to Alertmanager to a webhook', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let webhook: WebhookReceiver;
  let collector: LogReceiver;
  const stops: (() => Promise<unknown>)[] = [];
  const replicas: { config: string; metrics: string; serving: ServingProcess }[] = [];

  beforeAll(async () => {
    demo = await demoCopy();
    webhook = await startWebhookReceiver();
    stops.push(() => webhook.close());
    const alertmanager = await startAlertmanager(
      join(demo.dir, 'alertmanager'),
      (await deployed('alertmanager/alertmanager.yml'))
        .replace('http://alert-webhook:8080/alerts', webhook.url)
        .replace(/group_wait: \S+/, 'group_wait: 1s')
        .replace(/group_interval: \S+/, 'group_interval: 1s'),
    );
    stops.push(() => alertmanager.stop());
    collector = await startLogReceiver();
    stops.push(() => collector.close());
    for (const name of ['a', 'b']) {
      const port = await freePort();
      // Replica a ships its audit records to a collector the test can take down: then it refuses
      // every file operation with UNAVAILABLE, a fault of the server, which the availability
      // objective counts.
      const config =
        name === 'a'
          ? await demo.configWithAudit(
              'replica-a.yaml',
              `  sink: stderr\n  otlp:\n    endpoint: ${collector.url}\n    timeoutMs: 300\n`,
              `metrics: { port: ${port}, host: 127.0.0.1 }\nlimits:\n  rateLimit: { perSecond: 10000, burst: 10000 }\n`,
            )
          : await demo.configWith(`replica-${name}.yaml`, `metrics: { port: ${port}, host: 127.0.0.1 }\n`);
      replicas.push({
        config,
        metrics: `127.0.0.1:${port}`,
        serving: await serveMcpd(['--config', config, '--port', '0']),
      });
    }
    stops.push(() => Promise.all(replicas.map((replica) => replica.serving.stop())));
    const rules: string[] = [];
    for (const file of ['mcpd-alerts.yml', 'mcpd-slo.yml']) {
      const copy = join(demo.dir, file);
      await writeFile(copy, (await deployed(`prometheus/rules/${file}`)).replace(/\bfor: \d+[smh]\b/g, 'for: 1s'));
      rules.push(copy);
    }
    const prometheus = await startPrometheus(
      join(demo.dir, 'prometheus'),
      replicas.map((replica) => ({ host: replica.metrics, path: '/metrics' })),
      { ruleFiles: rules, alertmanager: alertmanager.address, job: 'mcpd' },
    );
    stops.push(() => prometheus.stop());
  }, 90_000);

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    await demo?.cleanup();
  });

  it('notifies a killed replica with its labels, summary and runbook link, then its recovery', async () => {
    const [healthy, victim] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const about = (status: 'firing' | 'resolved') =>
      webhook.notifications.flatMap((notification) =>
        notification.alerts.filter(
          (alert) =>
            alert.status === status &&
            alert.labels.alertname === 'McpdTargetDown' &&
            alert.labels.instance === victim.metrics,
        ),
      );
    expect(await victim.serving.stop('SIGKILL')).toBeNull();
    await until(() => about('firing').length > 0, {
      what: 'McpdTargetDown at the webhook',
      timeoutMs: 60_000,
      describe: () => JSON.stringify(webhook.notifications),
    });
    const [firing] = about('firing');
    expect(firing?.labels).toMatchObject({ alertname: 'McpdTargetDown', severity: 'critical', job: 'mcpd' });
    expect(firing?.annotations).toEqual({
      summary: `mcpd ${victim.metrics} is down`,
      description: 'Prometheus cannot scrape this replica.',
      runbook_url: 'docs/runbooks.md#mcpdtargetdown',
    });
    const notification = webhook.notifications.find((n) => n.alerts.some((alert) => alert === firing));
    expect(notification).toMatchObject({ receiver: 'on-call', status: 'firing' });

    victim.serving = await serveMcpd(['--config', victim.config, '--port', '0']);
    await until(() => about('resolved').length > 0, {
      what: 'the resolved notification',
      timeoutMs: 60_000,
      describe: () => JSON.stringify(webhook.notifications),
    });
    // Nothing about the replica that stayed up, and nothing else fired meanwhile.
    const alerts = webhook.notifications.flatMap((n) => n.alerts);
    expect(alerts.filter((alert) => alert.labels.instance === healthy.metrics)).toEqual([]);
    expect(new Set(alerts.map((alert) => alert.labels.alertname))).toEqual(new Set(['McpdTargetDown']));
  }, 150_000);

  it('pages on a burst of faults (the availability budget burning fast), then sends its resolution', async () => {
    const [replica] = replicas as [(typeof replicas)[0]];
    const about = (status: 'firing' | 'resolved') =>
      webhook.notifications.flatMap((notification) =>
        notification.alerts.filter(
          (alert) => alert.status === status && alert.labels.alertname === 'McpdAvailabilityBudgetFastBurn',
        ),
      );
    const client = await modernHttpClient(replica.serving.url, 'burning');
    try {
      const read = async () =>
        errorCode(await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } }));
      for (let i = 0; i < 5; i++) expect(await read()).toBeUndefined();
      // The collector refuses: the replica stops serving file operations (UNAVAILABLE) until it takes them.
      collector.down();
      let faults = 0;
      for (let i = 0; i < 1000 && faults < 10; i++) if ((await read()) === 'UNAVAILABLE') faults += 1;
      expect(faults).toBe(10);
      await until(() => about('firing').length > 0, {
        what: 'McpdAvailabilityBudgetFastBurn at the webhook',
        timeoutMs: 60_000,
        describe: () => JSON.stringify(webhook.notifications.map((n) => n.alerts.map((a) => a.labels.alertname))),
      });
      const [firing] = about('firing');
      expect(firing?.labels).toMatchObject({ severity: 'critical', slo: 'availability', job: 'mcpd' });
      expect(firing?.annotations.summary).toBe(
        'mcpd: tool calls fail with a fault of the server, burning the availability error budget fast',
      );
      expect(firing?.annotations.runbook_url).toBe('docs/runbooks.md#mcpdavailabilitybudgetfastburn');
      // The slow burn of the same objective is inhibited while the fast one pages.
      const alerts = webhook.notifications.flatMap((n) => n.alerts);
      expect(alerts.filter((alert) => alert.labels.alertname === 'McpdAvailabilityBudgetSlowBurn')).toEqual([]);

      // The collector recovers, the replica serves again, and calls that succeed bring the ratio down.
      collector.up();
      const base = new URL(replica.serving.url).origin;
      await until(async () => (await fetch(`${base}/ready`)).status === 200, { what: 'readiness to come back' });
      await until(
        async () => {
          for (let i = 0; i < 50; i++) expect(await read()).toBeUndefined();
          return about('resolved').length > 0;
        },
        { what: 'the resolved notification', timeoutMs: 90_000, intervalMs: 100 },
      );
    } finally {
      await client.close();
    }
  }, 180_000);
});
