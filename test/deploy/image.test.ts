import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modernHttpClient } from '../helpers/clients.js';
import { type PrivateDocker, startPrivateDocker } from '../helpers/docker.js';
import { freePort } from '../helpers/ports.js';
import { type ContentBlockLike, readFileParts } from '../helpers/reads.js';
import { requireCommand } from '../helpers/tools.js';
import { until, WaitTimeout } from '../helpers/wait.js';
import { demoCopy, REPO } from '../helpers/workspace.js';

/**
 * The container image, built from deploy/Dockerfile unchanged and run for real: a private dockerd,
 * a local stand-in for node:20-bookworm-slim (no registry here), and the seed's limits.
 */
const IMAGE = 'mcpd:deploy-test';
const NGINX_IMAGE = 'mcpd-nginx:deploy-test';
const STOP_GRACE_S = 30;
const LINES = 4 * 131_072; // 4 MiB of "x,y,z,w\n"
const LONG_CALLS = 8;
const run = promisify(execFile);

describe('the container images (mcpd, nginx)', () => {
  let docker: PrivateDocker;
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let port: number;
  const container = `mcpd-test-${process.pid}`;

  beforeAll(async () => {
    for (const command of ['dockerd', 'docker', 'debootstrap', 'openssl']) requireCommand(command);
    docker = await startPrivateDocker();
    await docker.script('scripts/docker/base-image.sh');
    await docker.docker(['build', '--network=host', '-q', '-f', 'deploy/Dockerfile', '-t', IMAGE, '.'], 600_000);
    await docker.docker(
      ['build', '--network=host', '-q', '-f', 'deploy/nginx/Dockerfile', '-t', NGINX_IMAGE, '.'],
      600_000,
    );

    // The seed's two roots, mounted as a deployment would: the project read-write (owned by the
    // container's uid), the templates read-only.
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/long.csv'), 'x,y,z,w\n'.repeat(LINES));
    await run('chown', ['-R', '1000:1000', demo.project]);
    port = await freePort();
    const metricsPort = await freePort();
    await docker.docker([
      'run',
      '--detach',
      '--name',
      container,
      '--network=host',
      '--memory=512m',
      '--cpus=0.5',
      '--read-only',
      '--user=1000',
      '--health-interval=1s',
      '--health-start-period=30s',
      `--env=MCPD_PORT=${port}`,
      `--env=MCPD_METRICS_PORT=${metricsPort}`,
      `--volume=${demo.project}:/workspace/mcp-demo`,
      `--volume=${demo.templates}:/shared/templates:ro`,
      IMAGE,
    ]);
    await docker.waitHealthy(container, 90_000);
  }, 900_000);

  afterAll(async () => {
    await docker?.docker(['rm', '--force', container]).catch(() => undefined);
    await docker?.stop();
    await demo?.cleanup();
  }, 120_000);

  it('labels the image and declares a non-root user, a health check and its writable paths', async () => {
    const config = JSON.parse(await docker.docker(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])) as {
      User: string;
      Labels: Record<string, string>;
      Healthcheck: { Test: string[] };
      Volumes: Record<string, unknown>;
      Entrypoint: string[];
    };
    expect(config.User).toBe('1000:1000');
    expect(config.Labels['org.opencontainers.image.title']).toBe('mcpd');
    expect(config.Labels['org.opencontainers.image.source']).toMatch(/^https:\/\//);
    expect(config.Healthcheck.Test).toEqual(['CMD', 'mcpd', 'healthcheck']);
    expect(Object.keys(config.Volumes).sort()).toEqual(['/tmp', '/workspace']);
    expect(config.Entrypoint).toEqual(['mcpd']);
  });

  it('runs mcpd as PID 1 with uid 1000, on a read-only root, with a heap sized from the memory limit', async () => {
    const status = await docker.docker(['exec', container, 'cat', '/proc/1/status']);
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(await docker.docker(['exec', container, 'cat', '/proc/1/comm'])).toBe('node\n');
    // Seen from the host too: the process docker started is not root.
    const top = await docker.docker(['top', container, '-o', 'pid,uid,args']);
    expect(top).toMatch(/\n\S+\s+1000\s+node \/app\/dist\/main\.js serve/);

    await expect(docker.docker(['exec', container, 'touch', '/app/written'])).rejects.toThrow(/Read-only file system/);

    // Docker collects the container's log on its own schedule: wait for the line rather than race it.
    const listeningLine = async () =>
      (await docker.logs(container)).split('\n').find((line) => line.includes('"msg":"listening"'));
    const listening = await until(listeningLine, {
      what: 'the "listening" line in the container log',
      intervalMs: 250,
    }).catch((error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error;
      return undefined;
    });
    expect(listening, 'no "listening" line in the container log').toBeDefined();
    const { heapLimitBytes } = JSON.parse(listening as string) as { heapLimitBytes: number };
    // 75% of 512 MiB for the old space, plus V8's young generation: under the limit, well above Node's
    // default for a 512 MiB machine.
    expect(heapLimitBytes).toBeLessThan(512 * 1024 * 1024);
    expect(heapLimitBytes).toBeGreaterThan(300 * 1024 * 1024);
  });

  it('serves /mcp to the SDK client: roots, reads, and writes on the read-write mount', async () => {
    const client = await modernHttpClient(`http://127.0.0.1:${port}/mcp`, 'image-test');
    try {
      const roots = (await client.callTool({ name: 'list_roots', arguments: {} })) as {
        structuredContent: { roots: { name: string; uri: string }[] };
      };
      expect(roots.structuredContent.roots.map((root) => root.uri)).toEqual([
        'file:///workspace/mcp-demo',
        'file:///shared/templates',
      ]);
      const written = (await client.callTool({
        name: 'write_file',
        arguments: { path: 'workspace/from-container.md', content: '# written in the container\n' },
      })) as { isError?: boolean };
      expect(written.isError).toBeFalsy();
      const read = (await client.callTool({
        name: 'read_file',
        arguments: { path: 'workspace/from-container.md' },
      })) as { content: ContentBlockLike[] };
      expect(readFileParts(read.content).block.text).toBe('# written in the container\n');
      const denied = (await client.callTool({
        name: 'write_file',
        arguments: { root: 'Shared Templates', path: 'x.md', content: 'no' },
      })) as { isError?: boolean };
      expect(denied.isError).toBe(true);
    } finally {
      await client.close();
    }
  });

  it(`stops cleanly under load: docker stop lets ${LONG_CALLS} streaming calls finish and exits 0 within the grace`, async () => {
    const client = await modernHttpClient(`http://127.0.0.1:${port}/mcp`, 'image-load');
    const progressPerCall = new Array<number>(LONG_CALLS).fill(0);
    let stopping: Promise<number> | undefined;
    const calls = progressPerCall.map((_, index) =>
      client.callTool(
        { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 16384 } },
        {
          timeout: 120_000,
          onprogress: () => {
            progressPerCall[index] = (progressPerCall[index] ?? 0) + 1;
            // Every call is streaming and none is near its end (256 chunks each): stop the container now.
            if (!stopping && progressPerCall.every((count) => count >= 2)) {
              const started = Date.now();
              stopping = docker
                .docker(['stop', '--time', String(STOP_GRACE_S), container], 60_000)
                .then(() => Date.now() - started);
            }
          },
        },
      ),
    );
    const results = (await Promise.all(calls)) as { isError?: boolean; structuredContent?: { lines: number } }[];
    expect(stopping, 'the calls finished before the container was stopped').toBeDefined();
    const stopMs = await (stopping as Promise<number>);
    await client.close().catch(() => undefined);

    expect(results.map((r) => (r.isError ? 'error' : r.structuredContent?.lines))).toEqual(
      new Array(LONG_CALLS).fill(LINES),
    );
    const final = await docker.state(container);
    expect(final.Status).toBe('exited');
    expect(final.ExitCode).toBe(0);
    expect(final.OOMKilled).toBe(false);
    expect(stopMs).toBeLessThan(STOP_GRACE_S * 1000);
    const log = await docker.logs(container);
    expect(log).toContain('"reason":"SIGTERM"');
    expect(log).toContain('"msg":"stopped"');
    // Every call was audited, from inside the container, as it finished.
    const audited = log
      .split('\n')
      .filter((line) => line.includes('"client":"image-load"') && line.includes('"decision":"allow"'));
    expect(audited).toHaveLength(LONG_CALLS);
    expect(audited.every((line) => line.includes('"outcome":"ok"') && line.includes(`"bytes":${LINES * 8}`))).toBe(
      true,
    );
  }, 180_000);

  it('the nginx image runs deploy/nginx/nginx.conf with TLS on a read-only root and reports healthy', async () => {
    // Its own network namespace (loopback only): ports 80 and 443 stay off the host. The replicas'
    // names resolve (nginx needs that to start) to an address where nothing listens.
    const tls = join(demo.dir, 'tls');
    await mkdir(tls, { recursive: true });
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-keyout',
      join(tls, 'tls.key'),
      '-out',
      join(tls, 'tls.crt'),
    ]);
    const name = `${container}-nginx`;
    await docker.docker([
      'run',
      '--detach',
      '--name',
      name,
      '--network=none',
      '--read-only',
      '--tmpfs=/var/lib/nginx',
      '--tmpfs=/var/log/nginx',
      '--health-interval=1s',
      ...['mcpd-1', 'mcpd-2', 'mcpd-3'].map((host) => `--add-host=${host}:127.0.0.1`),
      `--volume=${join(REPO, 'deploy/nginx/nginx.conf')}:/etc/nginx/nginx.conf:ro`,
      `--volume=${join(REPO, 'deploy/nginx/upstreams.conf')}:/etc/nginx/upstreams.conf:ro`,
      `--volume=${tls}:/etc/nginx/tls:ro`,
      NGINX_IMAGE,
    ]);
    try {
      await docker.waitHealthy(name, 60_000);
      // nginx answers inside the container without any replica: port 80 redirects to https.
      const probe = await docker.docker([
        'exec',
        name,
        'bash',
        '-c',
        "exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /mcp HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -1 <&3",
      ]);
      expect(probe).toMatch(/^HTTP\/1\.1 301/);
      // SIGQUIT (the image's STOPSIGNAL): nginx finishes open connections and exits 0.
      await docker.docker(['stop', '--time', '10', name]);
      expect((await docker.state(name)).ExitCode).toBe(0);
    } finally {
      await docker.docker(['rm', '--force', name]).catch(() => undefined);
    }
  });
});
