import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until } from './wait.js';
import { REPO } from './workspace.js';

const run = promisify(execFile);
const DOCKERD_SH = join(REPO, 'scripts/docker/dockerd.sh');

/** The parts of `docker inspect`'s .State that tests read. */
export interface ContainerState {
  Status: string;
  ExitCode: number;
  OOMKilled: boolean;
  Health?: { Status: string; Log: { ExitCode: number; Output: string }[] };
}

/**
 * A private dockerd for one test file (scripts/docker/dockerd.sh): its own socket, data and exec
 * roots, no bridge, no iptables. Everything runs against its socket; nothing else is touched.
 */
export interface PrivateDocker {
  /** `docker ARGS` against this daemon; rejects with stderr on a non-zero exit. */
  docker(args: string[], timeoutMs?: number): Promise<string>;
  /** Runs a repository script with DOCKER_HOST pointing here. */
  script(path: string, args?: string[], timeoutMs?: number): Promise<string>;
  /** A container's log, stdout and stderr (mcpd logs on stderr). */
  logs(container: string): Promise<string>;
  /** A container's state, as `docker inspect` reports it. */
  state(container: string): Promise<ContainerState>;
  /**
   * Resolves once the container's health check reports healthy; rejects with its state and log if it
   * stops running first or `timeoutMs` passes.
   */
  waitHealthy(container: string, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivateDocker(): Promise<PrivateDocker> {
  // Short: the socket path must fit in sun_path (108 bytes).
  const dir = await mkdtemp('/tmp/mcpd-dk-');
  let host: string;
  try {
    host = (await run('bash', [DOCKERD_SH, 'start', dir], { timeout: 90_000 })).stdout.trim();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const env = { ...process.env, DOCKER_HOST: host };
  const exec = async (file: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> => {
    try {
      return await run(file, args, { env, cwd: REPO, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    } catch (error) {
      const failed = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(
        `${file} ${args.join(' ')} failed: ${failed.message}\n${failed.stderr ?? ''}${failed.stdout ?? ''}`,
      );
    }
  };
  const docker = async (args: string[], timeoutMs = 120_000) => (await exec('docker', args, timeoutMs)).stdout;
  const logs = async (container: string) => {
    const { stdout, stderr } = await exec('docker', ['logs', container], 30_000);
    return stdout + stderr;
  };
  const state = async (container: string) =>
    JSON.parse(await docker(['inspect', '--format', '{{json .State}}', container])) as ContainerState;
  return {
    docker,
    script: async (path, args = [], timeoutMs = 600_000) =>
      (await exec('bash', [join(REPO, path), ...args], timeoutMs)).stdout,
    logs,
    state,
    waitHealthy: async (container, timeoutMs) => {
      let current: ContainerState | undefined;
      await until(
        async () => {
          current = await state(container);
          if (current.Health?.Status === 'healthy') return true;
          if (current.Status !== 'running') {
            throw new Error(
              `${container} never became healthy (it stopped running): ${JSON.stringify(current)}\n${await logs(container)}`,
            );
          }
          return false;
        },
        {
          what: `${container} to become healthy`,
          timeoutMs,
          intervalMs: 500,
          describe: async () => `${JSON.stringify(current)}\n${await logs(container)}`,
        },
      );
    },
    stop: async () => {
      await run('bash', [DOCKERD_SH, 'stop', dir], { timeout: 60_000 });
    },
  };
}
