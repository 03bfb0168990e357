import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { runCli } from '../helpers/cli.js';
import { modernHttpClient } from '../helpers/clients.js';
import { runMcpd, serveMcpd } from '../helpers/process.js';
import { startServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

describe('the mcpd command', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  beforeAll(async () => {
    demo = await demoCopy();
  });
  afterAll(async () => demo?.cleanup());

  it.each([
    ['.env', 'read', 1, 'DENY', 'exclude:.env'],
    ['docs/architecture.md', 'read', 0, 'ALLOW', 'read:*.md'],
    ['docs', 'list', 0, 'ALLOW', 'list:contained'],
    ['workspace/new.md', 'write', 0, 'ALLOW', 'write:workspace/**/*'],
    ['README.md', 'write', 1, 'DENY', 'default-deny:write'],
    ['../../etc/passwd', 'read', 1, 'DENY', 'containment:dotdot'],
  ])('explain %s --op %s prints the decision and the rule', async (path, op, code, verdict, rule) => {
    const result = await runCli(['explain', path, '--op', op, '--config', demo.config]);
    expect(result.code).toBe(code);
    expect(result.stdout.split('\n')[0]).toMatch(new RegExp(`^${verdict} ${op} `));
    expect(result.stdout).toContain(`rule:   ${rule}`);
  });

  it('explain --json prints the decision value; relative paths follow --root', async () => {
    const result = await runCli([
      'explain',
      'README.md',
      '--op',
      'write',
      '--root',
      'Shared Templates',
      '--json',
      '--config',
      demo.config,
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({
      allow: false,
      op: 'write',
      root: 'Shared Templates',
      rule: 'read-only-root',
    });
  });

  it('refuses an audit sink on stdout in stdio mode, where stdout carries the protocol, naming the key', async () => {
    const result = await runMcpd(['stdio', '--config', demo.config], { MCPD_AUDIT_SINK: 'stdout' });
    // A configuration error, as every invalid configuration exits.
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/audit\.sink: "stdout" cannot be used with --stdio/);
  });

  it('refuses usage errors with exit code 2', async () => {
    expect((await runCli(['explain', 'x'])).code).toBe(2);
    expect((await runCli(['explain', 'x', '--op', 'delete'])).code).toBe(2);
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli(['serve', '--port', 'eighty'])).code).toBe(2);
    expect((await runCli(['--no-such-flag'])).code).toBe(2);
    expect((await runCli(['explain', 'x', '--op', 'read', '--scope', 'mcpd:read'])).stderr).toContain(
      '--scope needs --principal',
    );
  });

  it('the built binary is the same CLI: --version, and usage errors exit 2 there too', async () => {
    const version = await runMcpd(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect((await runMcpd(['frobnicate'])).code).toBe(2);
  });

  it('refuses to bind a non-loopback address without authentication', async () => {
    const result = await runCli(['serve', '--config', demo.config, '--host', '0.0.0.0', '--port', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('server.host: refusing to bind a non-loopback address without authentication');
  });

  it('stops on SIGTERM after finishing the call in flight, flushes the audit and exits 0', async () => {
    const auditFile = join(demo.dir, 'sigterm-audit.log');
    await writeFile(join(demo.project, 'workspace/long.csv'), 'a,b\n'.repeat(1_500_000));
    const serving = await serveMcpd(['--config', demo.config, '--port', '0', '--audit-file', auditFile]);
    const client = await modernHttpClient(serving.url, 'sigterm-client');
    let progressed = 0;
    let signalled = false;
    const call = client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/long.csv', chunkSize: 1024 } },
      {
        onprogress: () => {
          progressed += 1;
          if (!signalled && progressed === 5) {
            signalled = true;
            serving.child.kill('SIGTERM');
          }
        },
      },
    );
    const result = (await call) as { structuredContent: { lines: number } };
    expect(result.structuredContent.lines).toBe(1_500_000);
    expect(await serving.exited).toBe(0);
    const records = await readAudit(auditFile);
    expect(records.filter((r) => r.client === 'sigterm-client')).toEqual([
      expect.objectContaining({ tool: 'process_large_dataset', outcome: 'ok', bytes: 6_000_000 }),
    ]);
    expect(serving.stderr()).toContain('"msg":"shutting down"');
    await client.close();
  }, 60_000);

  it('turns a result above limits.maxResultBytes into TOO_LARGE instead of sending it', async () => {
    const server = await startServer(await demo.configWith('small-results.yaml', 'limits:\n  maxResultBytes: 1000\n'));
    try {
      const client = await modernHttpClient(server.url);
      const listing = (await client.callTool({ name: 'grep', arguments: { pattern: '.', include: '*.md' } })) as {
        isError?: boolean;
        content: { text: string }[];
      };
      expect(listing.isError).toBe(true);
      expect(listing.content[0]?.text).toMatch(
        /^TOO_LARGE: the result is \d+ bytes, above the 1000-byte response limit/,
      );
      const small = (await client.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } })) as {
        isError?: boolean;
      };
      expect(small.isError).toBeFalsy();
      await client.close();
    } finally {
      await server.close();
    }
  });
});
