import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { modernHttpClient } from '../helpers/clients.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { modernRequest } from '../helpers/raw.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

type Result = { isError?: boolean; content: { text?: string }[]; structuredContent?: Record<string, unknown> };

function configText(options: { write: string; read: string; extra?: string }): string {
  return [
    'accessPolicy:',
    `  read: ${options.read}`,
    `  write: ${options.write}`,
    'roots:',
    '  - { name: Project, uri: ./workspace/mcp-demo }',
    'limits: { rateLimit: { perSecond: 1000, burst: 1000 } }',
    options.extra ?? '',
    '',
  ].join('\n');
}

async function waitForLog(serving: ServingProcess, text: string, after: number, timeoutMs = 10_000): Promise<void> {
  await until(() => serving.stderr().slice(after).includes(text), {
    what: `the log line "${text}"`,
    timeoutMs,
    describe: () => serving.stderr().slice(after),
  });
}

describe('hot reload of the built binary', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let config: string;
  let auditFile: string;
  let serving: ServingProcess;

  beforeAll(async () => {
    demo = await demoCopy();
    await writeFile(join(demo.project, 'workspace/big.csv'), 'a,b,c,d\n'.repeat(2_000_000));
    config = join(demo.dir, 'reload.yaml');
    auditFile = join(demo.dir, 'reload-audit.log');
    await writeFile(config, configText({ read: '["*.md", "*.csv"]', write: '["workspace/**/*"]' }));
    serving = await serveMcpd(['--config', config, '--port', '0', '--audit-file', auditFile]);
  });
  afterAll(async () => {
    await serving?.stop();
    await demo?.cleanup();
  });

  it('SIGHUP removing write access: work in flight finishes under the old config, new requests see the new one', async () => {
    const client = await modernHttpClient(serving.url, 'reloader');
    const write = (name: string) =>
      client.callTool({
        name: 'write_file',
        arguments: { path: `workspace/${name}`, content: name },
      }) as Promise<Result>;
    expect((await write('before.md')).isError).toBeFalsy();

    // A long read, in flight across the reload.
    let started!: () => void;
    const streaming = new Promise<void>((resolve) => {
      started = resolve;
    });
    const longRead = client.callTool(
      { name: 'process_large_dataset', arguments: { path: 'workspace/big.csv', chunkSize: 1024 } },
      { onprogress: () => started() },
    ) as Promise<Result>;
    await streaming;

    // The write that is already on its way when the signal lands still runs under the old config.
    const mark = serving.stderr().length;
    await writeFile(config, configText({ read: '["*.md"]', write: '[]' }));
    const racing = write('racing.md');
    serving.child.kill('SIGHUP');
    await waitForLog(serving, 'configuration reloaded', mark);

    const after = await write('after.md');
    expect(after.isError).toBe(true);
    expect(after.content[0]?.text).toMatch(/^WRITE_DENIED: .*write not permitted \(the root is read-only\)/);
    const [denied] = await waitForAudit(auditFile, (r) => r.requested === 'workspace/after.md');
    expect(denied).toMatchObject({ decision: 'deny', rule: 'read-only-root' });

    const finished = await longRead;
    expect(finished.isError).toBeFalsy();
    expect(finished.structuredContent?.lines).toBe(2_000_000);
    // ...while a new read of the same file is judged by the new rules.
    const again = (await client.callTool({
      name: 'read_file',
      arguments: { path: 'workspace/big.csv', length: 10 },
    })) as Result;
    expect(again.isError).toBe(true);
    // Whichever side of the swap the racing write fell on, it was judged whole, by one config.
    const raced = await racing;
    const [racedRecord] = await waitForAudit(auditFile, (r) => r.requested === 'workspace/racing.md');
    expect(racedRecord?.decision).toBe(raced.isError ? 'deny' : 'allow');
    await client.close();
  }, 60_000);

  it('SIGHUP with a broken config changes nothing and the server keeps serving', async () => {
    const mark = serving.stderr().length;
    await writeFile(config, 'roots:\n  - { name: Project, uri: ./workspace/mcp-demo, write: ["/abs"] }\n');
    serving.child.kill('SIGHUP');
    await waitForLog(serving, 'reload refused', mark);
    expect(serving.stderr().slice(mark)).toContain('roots[0].write[0]: globs are relative to the root');
    const client = await modernHttpClient(serving.url, 'after-broken');
    const read = (await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } })) as Result;
    expect(read.isError).toBeFalsy();
    const write = (await client.callTool({
      name: 'write_file',
      arguments: { path: 'workspace/x.md', content: 'x' },
    })) as Result;
    expect(write.isError).toBe(true);
    await client.close();
    expect((await fetch(serving.url.replace(/\/mcp$/, '/ready'))).status).toBe(200);
  });

  it('reloads on a change of the config file when reload.watchConfig is on', async () => {
    const watched = join(demo.dir, 'watched.yaml');
    await writeFile(
      watched,
      configText({ read: '["*.md"]', write: '[]', extra: 'reload: { watchConfig: true, debounceMs: 50 }' }),
    );
    const server = await serveMcpd(['--config', watched, '--port', '0']);
    try {
      const client = await modernHttpClient(server.url);
      const attempt = () =>
        client.callTool({ name: 'write_file', arguments: { path: 'workspace/w.md', content: 'w' } }) as Promise<Result>;
      expect((await attempt()).isError).toBe(true);
      const mark = server.stderr().length;
      await writeFile(
        watched,
        configText({
          read: '["*.md"]',
          write: '["workspace/**/*"]',
          extra: 'reload: { watchConfig: true, debounceMs: 50 }',
        }),
      );
      await waitForLog(server, 'configuration reloaded', mark);
      expect((await attempt()).isError).toBeFalsy();
      await client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('native TLS, reloaded on SIGHUP', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  beforeAll(async () => {
    demo = await demoCopy();
  });
  afterAll(async () => demo?.cleanup());

  function makeCertificate(name: string): { cert: string; key: string } {
    const cert = join(demo.dir, `${name}.crt`);
    const key = join(demo.dir, `${name}.key`);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        `/CN=${name}`,
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  }

  /** One HTTPS tools/call trusting `ca`; returns the status and the certificate the server showed. */
  function callOverTls(url: string, ca: string): Promise<{ status: number; subject: string }> {
    const { headers, body } = modernRequest('tools/call', { name: 'list_roots', arguments: {} });
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'POST', ca, agent: false, headers }, (res) => {
        const subject = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '';
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, subject: String(subject) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('serves HTTPS from the configured files and picks up new ones on SIGHUP', async () => {
    const first = makeCertificate('first');
    const second = makeCertificate('second');
    const config = join(demo.dir, 'tls.yaml');
    await writeFile(join(demo.dir, 'server.crt'), first.cert);
    await writeFile(join(demo.dir, 'server.key'), first.key);
    await writeFile(
      config,
      configText({
        read: '["*.md"]',
        write: '[]',
        extra: 'server: { tls: { certFile: ./server.crt, keyFile: ./server.key } }',
      }),
    );
    const serving = await serveMcpd(['--config', config, '--port', '0']);
    try {
      expect(serving.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
      expect(await callOverTls(serving.url, first.cert)).toEqual({ status: 200, subject: 'first' });
      await expect(callOverTls(serving.url, second.cert)).rejects.toThrow();
      const mark = serving.stderr().length;
      await writeFile(join(demo.dir, 'server.crt'), second.cert);
      await writeFile(join(demo.dir, 'server.key'), second.key);
      serving.child.kill('SIGHUP');
      await waitForLog(serving, 'configuration reloaded', mark);
      expect(await callOverTls(serving.url, second.cert)).toEqual({ status: 200, subject: 'second' });
    } finally {
      await serving.stop();
    }
  });
});
