import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { requireCommand } from './tools.js';
import { until } from './wait.js';

export interface PrometheusServer {
  readonly url: string;
  /** An instant query; throws on a PromQL or HTTP error. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  stop(): Promise<void>;
}

/**
 * A real Prometheus (Debian's package) on loopback, scraping `targets` every second; with
 * `options`, evaluating rule files every second and sending what fires to an Alertmanager.
 * `targetsUp`: how many targets must be up before it is handed over (all, by default).
 */
export async function startPrometheus(
  dir: string,
  targets: readonly { host: string; path: string }[],
  options: { ruleFiles?: readonly string[]; alertmanager?: string; job?: string } = {},
): Promise<PrometheusServer> {
  const binary = requireCommand('prometheus');
  const port = await freePort();
  await mkdir(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      ...(options.ruleFiles ? ['rule_files:', ...options.ruleFiles.map((file) => `  - ${file}`)] : []),
      ...(options.alertmanager
        ? ['alerting:', '  alertmanagers:', `    - static_configs: [{ targets: ["${options.alertmanager}"] }]`]
        : []),
      'scrape_configs:',
      ...(options.job
        ? [
            // One job, as in deploy/prometheus: the targets are replicas of one service.
            [
              `  - job_name: ${options.job}`,
              `    metrics_path: ${targets[0]?.path ?? '/metrics'}`,
              `    static_configs: [{ targets: [${targets.map((target) => `"${target.host}"`).join(', ')}] }]`,
            ].join('\n'),
          ]
        : targets.map((target, index) =>
            [
              `  - job_name: mcpd${index === 0 ? '' : `-${index}`}`,
              `    metrics_path: ${target.path}`,
              `    static_configs: [{ targets: ["${target.host}"] }]`,
            ].join('\n'),
          )),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const url = `http://127.0.0.1:${port}`;
  const query = async (expr: string) => {
    const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { result: [] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data?.result ?? [];
  };
  // Ready, and every target scraped at least once (discovered targets are applied after a few seconds).
  let up = 0;
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      const ready = await fetch(`${url}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
      up = ready ? (await query('up == 1')).length : 0;
      return up === targets.length;
    },
    {
      what: `prometheus to scrape its ${targets.length} target(s)`,
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: () => `${up} target(s) up; stderr: ${stderr}`,
    },
  );
  return {
    url,
    query,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
