import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { requireCommand } from '../helpers/tools.js';
import { REPO, tempDir } from '../helpers/workspace.js';

/**
 * deploy/compose.yaml, checked by Debian's docker-compose (`config -q`, no daemon needed) and then
 * by our own asserts on the file compose resolved: the seed's limits, health-gated start-up, the
 * two roots and their modes, and agreement with the files it mounts (mcpd, nginx, Prometheus).
 */
const COMPOSE = join(REPO, 'deploy/compose.yaml');
const REPLICAS = ['mcpd-1', 'mcpd-2', 'mcpd-3'];
const run = promisify(execFile);

interface Service {
  image: string;
  user?: string;
  read_only?: boolean;
  tmpfs?: string[];
  volumes?: string[];
  ports?: string[];
  secrets?: { source: string }[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
  build?: { context: string; dockerfile: string };
  deploy?: { resources: { limits: { cpus: number | string; memory: string }; reservations?: Record<string, unknown> } };
  networks?: Record<string, { ipv4_address?: string } | null>;
}

describe('deploy/compose.yaml', () => {
  let resolved: { services: Record<string, Service>; secrets: Record<string, { file: string }> };
  let scratch: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    requireCommand('docker-compose');
    scratch = await tempDir('mcpd-compose-');
    resolved = parse((await run('docker-compose', ['-f', COMPOSE, 'config'])).stdout);
  });
  afterAll(async () => scratch?.cleanup());

  it('passes docker-compose config -q, which refuses a broken copy', async () => {
    await expect(run('docker-compose', ['-f', COMPOSE, 'config', '-q'])).resolves.toBeDefined();
    // The validator can fail: a misspelt key and a bad limit, in a copy beside the original.
    const text = await readFile(COMPOSE, 'utf8');
    for (const [from, to] of [
      ['  read_only: true\n  tmpfs:', '  read_onyl: true\n  tmpfs:'],
      ['cpus: "2.0"', 'cpus: [2]'],
    ] as const) {
      expect(text).toContain(from);
      const broken = join(REPO, 'deploy', `.compose-broken-${process.pid}.yaml`);
      await writeFile(broken, text.replace(from, to));
      try {
        await expect(run('docker-compose', ['-f', broken, 'config', '-q'])).rejects.toThrow();
      } finally {
        await rm(broken, { force: true });
      }
    }
  });

  it('runs three mcpd replicas with the seed limits, non-root, read-only and health-checked', () => {
    for (const name of REPLICAS) {
      const service = resolved.services[name] as Service;
      expect(service.image).toBe('mcpd:latest');
      expect(service.build?.dockerfile).toBe('deploy/Dockerfile');
      expect(service.user).toBe('1000:1000');
      expect(service.read_only).toBe(true);
      expect(service.tmpfs).toEqual(['/tmp']);
      expect(Number(service.deploy?.resources.limits.cpus)).toBe(2);
      expect(service.deploy?.resources.limits.memory).toBe('1G');
      expect(service.deploy?.resources.reservations).toEqual({ cpus: '0.5', memory: '256M' });
      expect(service.healthcheck?.test).toEqual(['CMD', 'mcpd', 'healthcheck']);
      expect(service.depends_on).toEqual({
        redis: { condition: 'service_healthy' },
        'otel-collector': { condition: 'service_started' },
      });
      // The seed's two roots: the project read-write, the templates read-only.
      expect(service.volumes).toContain(`${join(REPO, 'demo/workspace/mcp-demo')}:/workspace/mcp-demo:rw`);
      expect(service.volumes).toContain(`${join(REPO, 'demo/shared/templates')}:/shared/templates:ro`);
      expect(service.ports ?? []).toEqual([]);
    }
  });

  it('puts nginx with TLS in front, started only once every replica is healthy, on loopback ports', () => {
    const nginx = resolved.services.nginx as Service;
    expect(nginx.depends_on).toEqual(
      Object.fromEntries(REPLICAS.map((name) => [name, { condition: 'service_healthy' }])),
    );
    expect(nginx.ports).toEqual(['127.0.0.1:8443:443/tcp']);
    expect(nginx.volumes).toContain(`${join(REPO, 'deploy/nginx/nginx.conf')}:/etc/nginx/nginx.conf:ro`);
    expect(nginx.volumes).toContain(`${join(REPO, 'deploy/nginx/upstreams.conf')}:/etc/nginx/upstreams.conf:ro`);
    expect(nginx.volumes).toContain(`${join(REPO, 'deploy/nginx/tls')}:/etc/nginx/tls:ro`);
    expect(nginx.build?.dockerfile).toBe('deploy/nginx/Dockerfile');
    for (const name of ['redis', 'prometheus', 'alertmanager']) {
      expect((resolved.services[name] as Service).healthcheck).toBeDefined();
    }
  });

  it('agrees with the files it mounts: mcpd config, nginx upstreams and Prometheus targets', async () => {
    for (const service of Object.values(resolved.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        // The certificate is made by the operator (README, "Deploying"), never committed.
        if (source === join(REPO, 'deploy/nginx/tls')) continue;
        if (source.startsWith('/')) expect(existsSync(source), `${source} is mounted but missing`).toBe(true);
      }
    }

    // The replicas' config is one mcpd accepts, once the mounted paths exist.
    const secret = join(scratch.dir, 'key.sha256');
    await writeFile(secret, `${'ab'.repeat(32)}\n`);
    const mcpdText = await readFile(join(REPO, 'deploy/compose/mcpd.yaml'), 'utf8');
    const raw = parse(mcpdText);
    raw.auth.apiKeys[0].sha256File = secret;
    raw.roots[0].uri = join(REPO, 'demo/workspace/mcp-demo');
    raw.roots[1].uri = join(REPO, 'demo/shared/templates');
    const config = parseConfig(raw, join(scratch.dir, 'mcpd.yaml'));
    expect(config.auth.mode).toBe('apiKeys');
    expect(config.server.host).toBe('0.0.0.0');
    expect(resolved.secrets['mcpd-api-key.sha256']?.file).toBe(join(REPO, 'deploy/secrets/mcpd-api-key.sha256'));
    // The secret's mount point is where the config reads it.
    expect(parse(mcpdText).auth.apiKeys[0].sha256File).toBe('/run/secrets/mcpd-api-key.sha256');
    // Only nginx's fixed address is a trusted proxy.
    const nginxAddress = (resolved.services.nginx as Service).networks?.mcpd?.ipv4_address;
    expect(config.server.trustedProxies).toEqual([nginxAddress]);
    // The replicas share the stack's Redis: the service they wait for, on its default port.
    const redis = new URL(config.cluster.redis?.url ?? '');
    expect([redis.hostname, redis.port || '6379']).toEqual(['redis', '6379']);
    expect((resolved.services.redis as Service).healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const name of REPLICAS) expect((resolved.services[name] as Service).depends_on?.redis).toBeDefined();
    // Compose's stop grace covers mcpd's drain.
    for (const name of REPLICAS) {
      expect(parseSeconds((resolved.services[name] as Service).stop_grace_period)).toBeGreaterThan(
        config.shutdown.gracePeriodMs / 1000,
      );
    }

    const upstreams = await readFile(join(REPO, 'deploy/nginx/upstreams.conf'), 'utf8');
    // Both upstream pools (kept-alive for reads, fresh connections for writes) name every replica.
    const pools = [...upstreams.matchAll(/^upstream (\w+) \{([\s\S]*?)^\}/gm)];
    expect(pools.map((m) => m[1])).toEqual(['mcpd', 'mcpd_writes']);
    for (const [, name, body] of pools) {
      const servers = [...(body as string).matchAll(/^\s*server\s+([\w.-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`);
      expect(servers, `upstream ${name}`).toEqual(REPLICAS.map((replica) => `${replica}:${config.server.port}`));
    }
    expect(pools[0]?.[2]).toMatch(/^\s*keepalive \d+;/m);
    expect(pools[1]?.[2]).not.toMatch(/keepalive/);

    const prometheus = parse(await readFile(join(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8'));
    expect(prometheus.scrape_configs[0].static_configs[0].targets).toEqual(
      REPLICAS.map((name) => `${name}:${config.metrics.port}`),
    );
    // Prometheus loads every rule file and sends what fires to the stack's Alertmanager, which
    // reads deploy/alertmanager (amtool-checked in test/observability/prometheus.test.ts).
    expect(prometheus.rule_files).toEqual(['rules/mcpd-alerts.yml', 'rules/mcpd-slo.yml']);
    expect(prometheus.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['alertmanager:9093']);
    const alertmanager = resolved.services.alertmanager as Service;
    expect(alertmanager.volumes).toContain(`${join(REPO, 'deploy/alertmanager')}:/etc/alertmanager:ro`);
    expect((resolved.services.prometheus as Service).depends_on?.alertmanager).toBeDefined();
    expect(config.server.maxBodyBytes).toBe(4 * 1024 * 1024);
    expect(await readFile(join(REPO, 'deploy/nginx/nginx.conf'), 'utf8')).toMatch(/client_max_body_size 4m;/);
  });
});

function parseSeconds(value: string | undefined): number {
  const match = /^(\d+)s$/.exec(value ?? '');
  if (!match) throw new Error(`not a duration in seconds: ${value}`);
  return Number(match[1]);
}
