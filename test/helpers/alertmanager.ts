import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startJsonReceiver } from './receiver.js';
import { requireCommand } from './tools.js';
import { until } from './wait.js';

/** One notification as Alertmanager's webhook_config posts it (version 4). */
export interface WebhookNotification {
  readonly status: 'firing' | 'resolved';
  readonly receiver: string;
  readonly groupLabels: Record<string, string>;
  readonly commonAnnotations: Record<string, string>;
  readonly alerts: {
    readonly status: 'firing' | 'resolved';
    readonly labels: Record<string, string>;
    readonly annotations: Record<string, string>;
    readonly startsAt: string;
    readonly endsAt: string;
  }[];
}

export interface WebhookReceiver {
  readonly url: string;
  readonly notifications: WebhookNotification[];
  close(): Promise<void>;
}

/** Where Alertmanager's webhook posts: a loopback server keeping every notification. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const notifications: WebhookNotification[] = [];
  const receiver = await startJsonReceiver((body) => {
    notifications.push(body as WebhookNotification);
    return 200;
  });
  return { url: `http://127.0.0.1:${receiver.port}/alerts`, notifications, close: () => receiver.close() };
}

export interface AlertmanagerServer {
  /** host:port, for Prometheus's alerting config. */
  readonly address: string;
  stop(): Promise<void>;
}

/** A real Alertmanager (Debian's prometheus-alertmanager) on loopback, alone (no cluster). */
export async function startAlertmanager(dir: string, config: string): Promise<AlertmanagerServer> {
  const binary = requireCommand('prometheus-alertmanager');
  const port = await freePort();
  await mkdir(join(dir, 'data'), { recursive: true });
  const file = join(dir, 'alertmanager.yml');
  await writeFile(file, config);
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${file}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip: a single instance, and nothing listening beyond loopback.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`alertmanager exited: ${stderr}`);
      return fetch(`http://127.0.0.1:${port}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
    },
    { what: 'alertmanager to be ready', timeoutMs: 30_000, intervalMs: 100, describe: () => stderr },
  );
  return {
    address: `127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
