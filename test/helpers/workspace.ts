import { cp, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const DEMO = join(REPO, 'demo');

/** A fresh temporary directory (canonical path), removed by `cleanup`. */
export async function tempDir(prefix = 'mcpd-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes `files` (relative path -> contents) under `base`, creating directories. */
export async function writeTree(base: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, contents] of Object.entries(files)) {
    const path = join(base, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, contents);
  }
}

/**
 * A private copy of the demo workspace and its config, so tests may write, swap links and
 * break things without touching the repository.
 */
export async function demoCopy(): Promise<{
  dir: string;
  config: string;
  project: string;
  templates: string;
  /** Writes the demo config with `yaml` (top-level keys it lacks) appended to `name` beside it; returns its path. */
  configWith: (name: string, yaml: string) => Promise<string>;
  /** Writes the demo config with its `audit:` section replaced by `audit` (YAML lines, indented) and `extra` appended. */
  configWithAudit: (name: string, audit: string, extra?: string) => Promise<string>;
  cleanup: () => Promise<void>;
}> {
  const { dir, cleanup } = await tempDir('mcpd-demo-');
  await cp(DEMO, dir, { recursive: true });
  const config = join(dir, 'mcpd.yaml');
  return {
    dir,
    config,
    project: join(dir, 'workspace/mcp-demo'),
    templates: join(dir, 'shared/templates'),
    configWith: async (name, yaml) => {
      const file = join(dir, name);
      await writeFile(file, `${await readFile(config, 'utf8')}\n${yaml}`);
      return file;
    },
    configWithAudit: async (name, audit, extra = '') => {
      const file = join(dir, name);
      const text = (await readFile(config, 'utf8')).replace(/^audit:\n {2}sink: stderr\n/m, `audit:\n${audit}`);
      if (!text.includes(audit)) throw new Error('the demo config has no `audit: sink: stderr` section to replace');
      await writeFile(file, `${text}\n${extra}`);
      return file;
    },
    cleanup,
  };
}
