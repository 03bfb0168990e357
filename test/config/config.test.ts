import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderConfigJsonSchema } from '../../src/config/jsonSchema.js';
import { ConfigError, DEMO_CONFIG_PATH, loadConfig, overridesFromEnv } from '../../src/config/load.js';
import { BUILTIN_EXCLUDES } from '../../src/config/schema.js';
import { runCli } from '../helpers/cli.js';
import { REPO, tempDir } from '../helpers/workspace.js';

function problemsOf(fn: () => unknown): { key: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => cleanup());

  const write = async (name: string, text: string) => {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  };

  it('loads the embedded demo with the seed roots and the built-in excludes', () => {
    const config = loadConfig();
    expect(config.source).toBe(DEMO_CONFIG_PATH);
    expect(config.roots.map((root) => root.name)).toEqual(['MCP Demo Project', 'Shared Templates']);
    expect(config.roots[0]?.write).toEqual(['workspace/**/*']);
    expect(config.roots[1]?.write).toEqual([]);
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8000 });
    for (const pattern of [...BUILTIN_EXCLUDES, '.env', 'credentials.*', '*.key'])
      expect(config.exclude).toContain(pattern);
    expect(Object.isFrozen(config.roots)).toBe(true);
  });

  it('resolves relative root paths against the config file and file:// URIs as given', async () => {
    const file = await write(
      'c.yaml',
      `roots:\n  - { name: a, uri: ./here }\n  - { name: b, uri: "file:///srv/data" }\n`,
    );
    const config = loadConfig({ file });
    expect(config.roots[0]?.path).toBe(join(dir, 'here'));
    expect(config.roots[0]?.uri).toBe(`file://${join(dir, 'here')}`);
    expect(config.roots[1]?.path).toBe('/srv/data');
  });

  it('names the key, the value and the reason for a bad glob', async () => {
    const file = await write(
      'c.yaml',
      `roots:\n  - { name: a, uri: ./a }\n  - { name: b, uri: ./b, write: ["/etc/*"] }\n`,
    );
    const problems = problemsOf(() => loadConfig({ file }));
    expect(problems).toEqual([
      { key: 'roots[1].write[0]', message: 'globs are relative to the root; remove the leading "/" (got "/etc/*")' },
    ]);
  });

  it.each([
    ['server:\n  prot: 1\nroots: [{ name: a, uri: ./a }]\n', 'server.prot', /unknown setting/],
    ['roots: []\n', 'roots', /at least one root/],
    ['server: { port: 70000 }\nroots: [{ name: a, uri: ./a }]\n', 'server.port', /70000/],
    ['server: { port: "80" }\nroots: [{ name: a, uri: ./a }]\n', 'server.port', /expected number.*"80"/],
    ['roots: [{ name: a, uri: ./a }, { name: a, uri: ./b }]\n', 'roots[1].name', /duplicate root name/],
    ['roots: [{ name: a, uri: "http://example.com/x" }]\n', 'roots[0].uri', /only file:\/\/ URIs/],
    ['roots: [{ name: a, uri: ./a, read: ["docs/../.."] }]\n', 'roots[0].read[0]', /"\.\." segments/],
    ['server: { host: 0.0.0.0 }\nroots: [{ name: a, uri: ./a }]\n', 'server.host', /non-loopback.*authentication/],
    ['audit: { sink: file }\nroots: [{ name: a, uri: ./a }]\n', 'audit.path', /required/],
    [
      'audit: { sink: stderr, rotate: { maxBytes: 1000000 } }\nroots: [{ name: a, uri: ./a }]\n',
      'audit.rotate',
      /only a file sink rotates/,
    ],
    [
      'audit: { sink: file, path: ./a.log, rotate: {} }\nroots: [{ name: a, uri: ./a }]\n',
      'audit.rotate',
      /maxBytes, interval/,
    ],
    [
      'audit: { sink: file, path: ./a.log, rotate: { maxBytes: 100 } }\nroots: [{ name: a, uri: ./a }]\n',
      'audit.rotate.maxBytes',
      /4096/,
    ],
    [
      'audit: { otlp: { endpoint: "grpc://collector:4317" } }\nroots: [{ name: a, uri: ./a }]\n',
      'audit.otlp.endpoint',
      /./,
    ],
    ['roots: [{ uri: ./a }]\n', 'roots[0].name', /required/],
    [
      'auth: { mode: jwt, jwt: { issuer: "https://i", jwksUrl: "https://i/jwks" } }\nroots: [{ name: a, uri: ./a }]\n',
      'server.publicUrl',
      /required with auth.mode jwt/,
    ],
    [
      'server: { keepAliveTimeoutMs: 70000, headersTimeoutMs: 60000 }\nroots: [{ name: a, uri: ./a }]\n',
      'server.headersTimeoutMs',
      /must be above server.keepAliveTimeoutMs/,
    ],
    [
      `auth: { mode: apiKeys, apiKeys: [{ principal: a, sha256: "${'a'.repeat(64)}" }, { principal: b, sha256: "${'A'.repeat(64)}" }] }\nroots: [{ name: a, uri: ./a }]\n`,
      'auth.apiKeys[1].sha256',
      /the same key as auth.apiKeys\[0\]/,
    ],
    [
      'grants: [{ scopes: [x], roots: [nope], access: [read] }]\nroots: [{ name: a, uri: ./a }]\n',
      'grants[0].roots[0]',
      /no root has this name/,
    ],
    [
      'grants: [{ scopes: [x], databases: [nope], access: [read] }]\nroots: [{ name: a, uri: ./a }]\n',
      'grants[0].databases[0]',
      /no database has this name/,
    ],
    [
      'databases: [{ name: d, driver: mysql, path: ./d }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].driver',
      /sqlite.*postgres/,
    ],
    [
      'databases: [{ name: d, driver: postgres, url: "postgres://u:hunter2@db/x" }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].url',
      /no password in the URL/,
    ],
    [
      'databases: [{ name: d, driver: postgres, path: ./d }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].path',
      /unknown setting/,
    ],
    [
      'databases: [{ name: d, driver: postgres, url: "postgres://u@db/x", passwordEnv: MCPD_TEST_UNSET_PG }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].passwordEnv',
      /MCPD_TEST_UNSET_PG is not set/,
    ],
    [
      'databases: [{ name: d, driver: sqlite, path: ./d }, { name: d, driver: sqlite, path: ./e }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[1].name',
      /duplicate database name/,
    ],
    [
      'databases: [{ name: d, driver: sqlite, path: "http://x/d" }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].path',
      /only file:\/\/ URIs/,
    ],
    [
      'databases: [{ name: d, driver: sqlite, path: ./d, exclude: ["/abs"] }]\nroots: [{ name: a, uri: ./a }]\n',
      'databases[0].exclude[0]',
      /remove the leading/,
    ],
    [
      'auth: { mode: apiKeys, apiKeys: [{ principal: a }] }\nroots: [{ name: a, uri: ./a }]\n',
      'auth.apiKeys[0]',
      /exactly one of sha256/,
    ],
    [
      'server: { trustedProxies: ["10.0.0.0/8", "not-an-address"] }\nroots: [{ name: a, uri: ./a }]\n',
      'server.trustedProxies[1]',
      /not an IP address, a CIDR/,
    ],
    [
      'cluster: { redis: { url: "redis://mcpd:hunter2@redis:6379" } }\nroots: [{ name: a, uri: ./a }]\n',
      'cluster.redis.url',
      /no password in the URL/,
    ],
    [
      'cluster: { redis: { mode: sentinel, nodes: [{ host: s1 }] } }\nroots: [{ name: a, uri: ./a }]\n',
      'cluster.redis.sentinelName',
      /needs sentinelName/,
    ],
    ['cluster: { redis: { mode: cluster } }\nroots: [{ name: a, uri: ./a }]\n', 'cluster.redis.nodes', /needs nodes/],
    [
      'cluster: { redis: { url: "redis://r", passwordEnv: MCPD_TEST_UNSET_REDIS } }\nroots: [{ name: a, uri: ./a }]\n',
      'cluster.redis.passwordEnv',
      /MCPD_TEST_UNSET_REDIS is not set/,
    ],
    [
      'cluster: { redis: { url: "redis://r", passwordFile: ./missing } }\nroots: [{ name: a, uri: ./a }]\n',
      'cluster.redis.passwordFile',
      /file not found/,
    ],
  ])('rejects %j at %s', async (text, key, message) => {
    const file = await write('c.yaml', text);
    const problems = problemsOf(() => loadConfig({ file }));
    expect(problems.map((p) => p.key)).toContain(key);
    expect(problems.find((p) => p.key === key)?.message).toMatch(message);
  });

  it('reads the Redis password from its file and turns on TLS for rediss://', async () => {
    await write('redis.pass', 'hunter2\n');
    const file = await write(
      'c.yaml',
      'cluster: { redis: { url: "rediss://redis.internal:6380/2", username: mcpd, passwordFile: ./redis.pass } }\nroots: [{ name: a, uri: ./a }]\n',
    );
    const { redis } = loadConfig({ file }).cluster;
    expect(redis).toMatchObject({
      url: 'rediss://redis.internal:6380/2',
      username: 'mcpd',
      password: 'hunter2',
      tls: {},
    });
    expect(JSON.stringify(redis)).not.toContain('passwordFile');
  });

  it('reports YAML syntax errors with line and column', async () => {
    const file = await write('c.yaml', 'roots:\n  - name: a\n   uri: [\n');
    const [problem] = problemsOf(() => loadConfig({ file }));
    expect(problem?.key).toMatch(new RegExp(`^${file}:\\d+:\\d+$`));
    expect(problem?.message).toMatch(/^YAML: /);
  });

  it('applies MCPD_* overrides and refuses malformed ones by variable name', () => {
    expect(overridesFromEnv({ MCPD_PORT: '9001', MCPD_HOST: '::1', MCPD_LOG_LEVEL: 'debug' })).toEqual({
      overrides: { port: 9001, host: '::1', logLevel: 'debug' },
      problems: [],
    });
    expect(overridesFromEnv({ MCPD_PORT: 'eighty' }).problems).toEqual([
      { key: 'MCPD_PORT', message: 'must be an integer (got "eighty")' },
    ]);
    const config = loadConfig({ overrides: [{ port: 1234 }, { port: 4321, logLevel: 'warn' }] });
    expect(config.server.port).toBe(4321);
    expect(config.log.level).toBe('warn');
    // Containers move the metrics listener off the serving port with one variable.
    const { overrides } = overridesFromEnv({ MCPD_METRICS_PORT: '9555' });
    expect(loadConfig({ overrides: [overrides] }).metrics.port).toBe(9555);
  });

  it('publishes a JSON Schema that matches the zod schema', async () => {
    const committed = await readFile(join(REPO, 'schema/mcpd.config.schema.json'), 'utf8');
    expect(committed, 'schema/mcpd.config.schema.json is stale: run npm run schema').toBe(renderConfigJsonSchema());
    const schema = JSON.parse(committed) as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['server', 'accessPolicy', 'roots', 'limits', 'audit', 'log', 'resources', 'shutdown']),
    );
    expect(schema.required).toEqual(['roots']);
  });

  // The CLI as a function (runCli): argv and env in, exit code and output out. No case here needs
  // a real process; that the built binary is this same CLI is checked in test/e2e/cli.test.ts.
  describe('mcpd check-config', () => {
    it('prints the resolved config and exits 0 for the demo', async () => {
      const result = await runCli(['check-config', DEMO_CONFIG_PATH]);
      expect(result.code).toBe(0);
      const printed = JSON.parse(result.stdout) as { roots: { name: string; canonicalPath: string }[] };
      expect(printed.roots.map((root) => root.name)).toEqual(['MCP Demo Project', 'Shared Templates']);
      expect(result.stderr).toContain('OK (2 roots)');
    });

    it('exits 2 naming key, value and reason, without a stack trace', async () => {
      const file = await write(
        'bad.yaml',
        'roots:\n  - { name: a, uri: ./a }\n  - { name: b, uri: ./b, write: ["/abs"] }\n',
      );
      const result = await runCli(['check-config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        'roots[1].write[0]: globs are relative to the root; remove the leading "/" (got "/abs")',
      );
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(result.stdout).toBe('');
    });

    it('exits 2 when a root directory does not exist', async () => {
      const file = await write('missing.yaml', 'roots:\n  - { name: gone, uri: ./does-not-exist }\n');
      const result = await runCli(['check-config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('roots[0].uri: directory does not exist');
    });

    it('exits 2 for a missing file and for a malformed environment override', async () => {
      const missing = await runCli(['check-config', join(dir, 'nope.yaml')]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('cannot read the config file: file not found');
      const env = await runCli(['check-config', DEMO_CONFIG_PATH], { MCPD_PORT: 'x' });
      expect(env.code).toBe(2);
      expect(env.stderr).toContain('MCPD_PORT: must be an integer (got "x")');
    });
  });
});
