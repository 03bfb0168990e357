import { type ChildProcess, execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AuditRecord } from '../../src/audit/record.js';
import { readAudit } from '../helpers/audit.js';
import { spawnNginx, waitForExit, withTestPorts, withTestUpstreams } from '../helpers/nginx.js';
import { attribute, type OtlpSpan, type SpanReceiver, startSpanReceiver } from '../helpers/otlp.js';
import { freePort } from '../helpers/ports.js';
import { runCommand, type ServingProcess, serveMcpd } from '../helpers/process.js';
import { modernRequest } from '../helpers/raw.js';
import { makeCertificates } from '../helpers/tls.js';
import { requireCommand } from '../helpers/tools.js';
import { until, WaitTimeout } from '../helpers/wait.js';
import { demoCopy, REPO, tempDir } from '../helpers/workspace.js';
import type { NginxClientReport } from './fixtures/nginx-client.js';

/**
 * deploy/nginx/nginx.conf, run for real in front of three real mcpd processes: TLS with a CA of
 * the test's own, the official SDK client over HTTPS, progress streaming without buffering, load
 * balancing, client attribution, and nginx's own answers (413, 404, 429, redirects).
 *
 * The config is tested verbatim but for its two listen ports; the upstream servers come from
 * deploy/nginx/upstreams.conf with the replicas' host:port swapped for loopback ports.
 */

const DEPLOY = join(REPO, 'deploy/nginx');
const CLIENT_SCRIPT = join(REPO, 'test/deploy/fixtures/nginx-client.ts');
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const _run = promisify(execFile);

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface CallOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** A loopback source address other than 127.0.0.1: another client, as far as nginx can tell. */
  readonly localAddress?: string;
}

function collect(resolve: (reply: Reply) => void) {
  return (res: IncomingMessage) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      body += chunk;
    });
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
  };
}

function send(
  make: typeof httpsRequest | typeof httpRequest,
  url: string,
  extra: Record<string, unknown>,
  options: CallOptions,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = make(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...extra,
      },
      (res) => {
        answered = true;
        collect(resolve)(res);
      },
    );
    // nginx may answer (413) and close before the whole body is written: that is not a failure.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    req.end(options.body);
  });
}

/** A JSON-RPC request in the 2026-07-28 shape, with its headers. */
function mcpRequest(method: string, params: Record<string, unknown>): CallOptions & { body: string } {
  return { method: 'POST', ...modernRequest(method, params, { client: 'nginx-raw' }) };
}

/** A TLS handshake with the given client settings: what was negotiated, or the handshake error. */
function handshake(
  port: number,
  ca: string,
  options: { minVersion?: 'TLSv1.1' | 'TLSv1.2'; maxVersion?: 'TLSv1.1' | 'TLSv1.2'; ciphers?: string } = {},
): Promise<{ protocol: string | null; cipher: string; alpn: string | false } | { error: string }> {
  return new Promise((resolve) => {
    const socket: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca,
      servername: 'localhost',
      ALPNProtocols: ['h2', 'http/1.1'],
      ...options,
    });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name, alpn: socket.alpnProtocol ?? false });
      socket.end();
    });
    socket.once('error', (error) => resolve({ error: error.message }));
  });
}

describe('deploy/nginx/nginx.conf in front of three mcpd replicas', () => {
  let dir: string;
  let cleanupDir: (() => Promise<void>) | undefined;
  let demo: Awaited<ReturnType<typeof demoCopy>> | undefined;
  let receiver: SpanReceiver | undefined;
  const replicas: ServingProcess[] = [];
  const auditFiles: string[] = [];
  let nginx: ChildProcess | undefined;
  let nginxErr = '';
  let ca: string;
  let httpsPort: number;
  let httpPort: number;
  let original: string;
  let copied: string;
  let listenReplacements: number;
  let configTest: { ok: boolean; output: string };

  const accessLog = () => readFile(join(dir, 'access.log'), 'utf8');
  /**
   * nginx writes a request's access log line after the response has gone out, so a client can
   * read the log before the line is there: waits for the (whole) line with this request_id.
   */
  const accessLogLine = async (requestId: string): Promise<Record<string, unknown>> => {
    let log = '';
    return until(
      async () => {
        log = await accessLog();
        const line = log
          .split('\n')
          .slice(0, -1)
          .find((candidate) => candidate.includes(`"request_id":"${requestId}"`));
        return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
      },
      { what: `the access log line of request ${requestId}`, timeoutMs: 5000, describe: () => log.slice(-2000) },
    );
  };
  const https = (path: string, options: CallOptions = {}) =>
    send(httpsRequest, `https://127.0.0.1:${httpsPort}${path}`, { ca }, options);

  beforeAll(async () => {
    const nginxBin = requireCommand('nginx');
    const openssl = requireCommand('openssl');
    ({ dir, cleanup: cleanupDir } = await tempDir('mcpd-nginx-'));
    // Run as root, nginx's workers are `nobody`: they must reach the temp directories in here.
    await chmod(dir, 0o755);
    await makeCertificates(openssl, dir);
    ca = await readFile(join(dir, 'ca.pem'), 'utf8');

    [httpsPort, httpPort] = [await freePort(), await freePort()];
    const replicaPorts = [await freePort(), await freePort(), await freePort()];

    original = await readFile(join(DEPLOY, 'nginx.conf'), 'utf8');
    const ported = withTestPorts(original, httpsPort, httpPort);
    copied = ported.text;
    listenReplacements = ported.replaced;
    await writeFile(join(dir, 'nginx.conf'), copied);
    const upstreams = withTestUpstreams(await readFile(join(DEPLOY, 'upstreams.conf'), 'utf8'), replicaPorts);
    // Two upstreams of the same three replicas: kept-alive connections for reads, fresh ones for writes.
    if (upstreams.replaced !== 6)
      throw new Error(`upstreams.conf: expected 2 x 3 mcpd-N:8000 servers, found ${upstreams.replaced}`);
    await writeFile(join(dir, 'upstreams.conf'), upstreams.text);

    const nginxArgs = ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
    const check = spawnNginx(nginxBin, ['-t', ...nginxArgs], join(dir, 'nginx-t.out'));
    let checkErr = '';
    check.stderr?.on('data', (chunk: Buffer) => {
      checkErr += chunk;
    });
    await new Promise((resolve) => check.once('close', resolve));
    configTest = { ok: check.exitCode === 0, output: checkErr };
    if (!configTest.ok) throw new Error(`nginx -t failed:\n${configTest.output}`);

    // Three replicas of the demo, generous per-principal limits (every caller here is `anonymous`),
    // believing X-Forwarded-For from nginx (127.0.0.1), with spans sent to the receiver.
    demo = await demoCopy();
    receiver = await startSpanReceiver();
    const config = parseYaml(await readFile(demo.config, 'utf8')) as Record<string, Record<string, unknown>>;
    config.server = { ...config.server, trustedProxies: ['127.0.0.1'] };
    config.limits = { ...config.limits, rateLimit: { perSecond: 1000, burst: 1000 } };
    config.tracing = { enabled: true, endpoint: receiver.url };
    const configFile = join(demo.dir, 'nginx-replica.yaml');
    await writeFile(configFile, stringifyYaml(config));
    // 32 MiB: streaming it in 16 KiB chunks (2048 progress notifications) takes a second or more.
    // The watched file: the client subscribes to it and appends to it.
    const row = (i: number) => `${i},row ${i},${'x'.repeat(48)}\n`;
    const block = Array.from({ length: 10_000 }, (_, i) => row(i)).join('');
    await writeFile(
      join(demo.project, 'workspace/big.csv'),
      block.repeat(Math.ceil((32 * 1024 * 1024) / block.length)),
    );
    await writeFile(join(demo.project, 'workspace/watched.md'), '# watched through nginx\n');

    const started = await Promise.allSettled(
      replicaPorts.map((port, i) => {
        const auditFile = join(demo?.dir ?? dir, `audit-${i + 1}.log`);
        auditFiles.push(auditFile);
        return serveMcpd(['--config', configFile, '--port', String(port), '--audit-file', auditFile], {
          OTEL_BSP_SCHEDULE_DELAY: '200',
        });
      }),
    );
    for (const result of started) if (result.status === 'fulfilled') replicas.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;

    nginx = spawnNginx(nginxBin, [...nginxArgs, '-g', 'daemon off;'], join(dir, 'access.log'));
    nginx.stderr?.on('data', (chunk: Buffer) => {
      nginxErr += chunk;
    });
    const server = nginx;
    await until(
      async () => {
        if (server.exitCode !== null) throw new Error(`nginx exited with ${server.exitCode}:\n${nginxErr}`);
        const reply = await https('/health').catch(() => undefined);
        return reply?.status === 200;
      },
      {
        what: `nginx to answer https://127.0.0.1:${httpsPort}/health`,
        timeoutMs: 10_000,
        intervalMs: 50,
        describe: () => nginxErr,
      },
    );
  }, 60_000);

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      nginx.kill('SIGQUIT');
      if (!(await waitForExit(nginx, 5000))) {
        nginx.kill('SIGKILL');
        await waitForExit(nginx, 2000);
      }
    }
    await Promise.all(replicas.map((replica) => replica.stop()));
    await receiver?.close();
    await demo?.cleanup();
    await cleanupDir?.();
  });

  it('runs the real nginx.conf, changed only in its two listen ports, and nginx -t accepts it', () => {
    expect(listenReplacements).toBe(2);
    const ports: Record<string, string> = { [httpsPort]: '443', [httpPort]: '80' };
    const normalised = copied.replace(
      /^(\s*listen\s+)(\d+)/gm,
      (_match, head: string, port: string) => `${head}${ports[port] ?? port}`,
    );
    expect(normalised).toBe(original);
    const changed = copied.split('\n').filter((line, i) => line !== original.split('\n')[i]);
    expect(changed.map((line) => line.trim())).toEqual([
      `listen ${httpPort} default_server;`,
      `listen ${httpsPort} ssl http2 default_server;`,
    ]);
    expect(original).toMatch(/^\s*include upstreams\.conf;$/m);
    expect(configTest.ok).toBe(true);
    expect(configTest.output).toMatch(/test is successful/);
  });

  it('serves the official SDK client over HTTPS and streams progress through without buffering', async () => {
    const client = await runCommand(
      process.execPath,
      [
        '--import',
        'tsx',
        CLIENT_SCRIPT,
        `https://127.0.0.1:${httpsPort}/mcp`,
        'workspace/big.csv',
        '9',
        join(demo?.project ?? '', 'workspace/watched.md'),
      ],
      { cwd: REPO, env: { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }, timeoutMs: 40_000 },
    );
    expect(client.code, `client failed:\n${client.stderr}`).toBe(0);
    const report = JSON.parse(client.stdout) as NginxClientReport;

    expect(report.tools).toEqual(expect.arrayContaining(['list_roots', 'read_file', 'process_large_dataset']));
    expect(report.roots).toEqual(['MCP Demo Project', 'Shared Templates']);
    expect(report.reads).toBe(9);
    expect(report.dataset.bytes).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(report.lastProgress).toBe(report.dataset.bytes);

    // One notification per chunk, all delivered.
    const { progressAt, resultAt } = report;
    expect(progressAt).toHaveLength(report.dataset.chunks);
    const first = progressAt[0] ?? Number.NaN;
    const last = progressAt.at(-1) ?? Number.NaN;
    const summary = `first ${first.toFixed(0)} ms, last ${last.toFixed(0)} ms, result ${resultAt.toFixed(0)} ms`;
    // Incremental: the first notification came long before the result, and the notifications are
    // spread over the call rather than bunched at its end (as a buffering proxy would deliver them).
    expect(resultAt - first, summary).toBeGreaterThan(300);
    expect(last - first, summary).toBeGreaterThan(250);
    const early = progressAt.filter((t) => t < resultAt - 50).length;
    expect(early / progressAt.length, summary).toBeGreaterThan(0.5);
    // The second half of the notifications spans a share of the call, not an instant at its end: a
    // ratio of the call's own duration, which a faster or slower machine leaves alone.
    const halfway = progressAt[Math.floor(progressAt.length / 2)] ?? Number.NaN;
    expect((resultAt - halfway) / (resultAt - first), summary).toBeGreaterThan(0.1);

    // A lone change notification on an idle subscriptions/listen stream came through at once.
    expect(report.updateAfterMs, `no resources/updated after ${report.appends} appends`).not.toBeNull();
    expect(report.updateAfterMs).toBeLessThan(1500);
  }, 45_000);

  it('spreads requests over all three replicas', async () => {
    // The sinks are asynchronous: wait for all nine reads to be audited, wherever they went.
    const perReplica = async () =>
      (await Promise.all(auditFiles.map((file) => readAudit(file)))).map(
        (records) => records.filter((r) => r.client === 'nginx-client' && r.tool === 'read_file').length,
      );
    let all: number[] = [];
    await until(
      async () => {
        all = await perReplica();
        return all.reduce((a, b) => a + b, 0) >= 9;
      },
      { what: 'nine read_file audit records', timeoutMs: 5000, describe: () => JSON.stringify(all) },
    ).catch((error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error;
    });
    for (const [i, file] of auditFiles.entries()) expect(all[i], file).toBeGreaterThan(0);
    expect(all.reduce((a, b) => a + b, 0)).toBe(9);
  });

  it("forwards the client's X-Request-Id, else nginx's own, and mcpd audits that id", async () => {
    const call = mcpRequest('tools/call', { name: 'read_file', arguments: { path: 'README.md' } });
    const mine = await https('/mcp', { ...call, headers: { ...call.headers, 'x-request-id': 'nginx-edge-id-1' } });
    expect(mine.status, mine.body).toBe(200);
    expect(mine.headers['x-request-id']).toBe('nginx-edge-id-1');
    const generated = await https('/mcp', call);
    expect(generated.status, generated.body).toBe(200);
    const id = generated.headers['x-request-id'];
    // nginx's $request_id (32 hex digits), not the UUID mcpd would make up.
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    // Each request reached one replica: poll all three audit files (the sinks are asynchronous).
    const audited = async (requestId: unknown) => {
      let found: AuditRecord[] = [];
      await until(
        async () => {
          found = (await Promise.all(auditFiles.map((file) => readAudit(file))))
            .flat()
            .filter((r) => r.requestId === requestId);
          return found.length > 0;
        },
        { what: `the audit record of request ${String(requestId)}`, timeoutMs: 5000, intervalMs: 25 },
      ).catch((error: unknown) => {
        if (!(error instanceof WaitTimeout)) throw error;
      });
      return found;
    };
    expect(await audited('nginx-edge-id-1')).toHaveLength(1);
    expect(await audited(id)).toHaveLength(1);
    // The access log line carries the same id (once nginx has written it).
    await accessLogLine(String(id));
    expect(await accessLog()).toContain(`"request_id":"${id}"`);
  });

  it("ties one request to one trace id in nginx's access log, the replica's span and its audit line", async () => {
    const call = mcpRequest('tools/call', { name: 'read_file', arguments: { path: 'README.md' } });
    const spanOf = (requestId: string) =>
      receiver?.spans.find((s) => s.kind === 2 && attribute(s, 'mcpd.request.id') === requestId);
    const traced = async (requestId: string, traceparent?: string) => {
      const headers = { ...call.headers, 'x-request-id': requestId, ...(traceparent ? { traceparent } : {}) };
      const reply = await https('/mcp', { ...call, headers });
      expect(reply.status, reply.body).toBe(200);
      const line = await accessLogLine(requestId);
      await until(() => spanOf(requestId), {
        what: `the span of ${requestId}`,
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      let audit: AuditRecord | undefined;
      await until(
        async () => {
          audit = (await Promise.all(auditFiles.map((file) => readAudit(file))))
            .flat()
            .find((r) => r.requestId === requestId);
          return audit !== undefined;
        },
        { what: `the audit record of ${requestId}`, timeoutMs: 5000, intervalMs: 25 },
      );
      return { line, span: spanOf(requestId) as OtlpSpan, audit: audit as AuditRecord };
    };

    // No traceparent from the client: nginx starts the trace.
    const edge = await traced('nginx-trace-edge');
    expect(edge.line.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(edge.span.traceId).toBe(edge.line.trace_id);
    expect(edge.audit.traceId).toBe(edge.line.trace_id);
    // nginx stands as the span's parent, with an id derived from the same request id.
    expect(edge.span.parentSpanId).toBe(String(edge.line.trace_id).slice(16));

    // The client's own trace context is carried through unchanged.
    const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const client = await traced('nginx-trace-client', `00-${clientTrace}-00f067aa0ba902b7-01`);
    expect([client.line.trace_id, client.span.traceId, client.audit.traceId]).toEqual([
      clientTrace,
      clientTrace,
      clientTrace,
    ]);
    expect(client.span.parentSpanId).toBe('00f067aa0ba902b7');

    // A malformed one is replaced by nginx's, never passed on.
    const bad = await traced('nginx-trace-bad', '00-not-a-trace-01');
    expect(bad.span.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect([bad.line.trace_id, bad.audit.traceId]).toEqual([bad.span.traceId, bad.span.traceId]);
  }, 30_000);

  it('attributes requests to the client address nginx saw (X-Forwarded-For), not to nginx or a forged header', async () => {
    // The client connects from 127.0.0.5; nginx reaches the replicas from 127.0.0.1, which they trust.
    const call = mcpRequest('tools/call', { name: 'read_file', arguments: { path: 'README.md' } });
    const plain = await https('/mcp', {
      ...call,
      headers: { ...call.headers, 'x-request-id': 'nginx-xff-plain' },
      localAddress: '127.0.0.5',
    });
    expect(plain.status, plain.body).toBe(200);
    const forged = await https('/mcp', {
      ...call,
      headers: { ...call.headers, 'x-request-id': 'nginx-xff-forged', 'x-forwarded-for': '203.0.113.7' },
      localAddress: '127.0.0.5',
    });
    expect(forged.status, forged.body).toBe(200);

    const spanOf = (requestId: string) =>
      receiver?.spans.find((s) => s.kind === 2 && attribute(s, 'mcpd.request.id') === requestId);
    // Spans are exported in batches (every 200 ms here).
    await until(() => spanOf('nginx-xff-plain') && spanOf('nginx-xff-forged'), {
      what: 'the spans of both requests',
      timeoutMs: 10_000,
      intervalMs: 50,
      describe: () => JSON.stringify(receiver?.spans.map((s) => attribute(s, 'mcpd.request.id'))),
    }).catch((error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error;
    });
    const plainSpan = spanOf('nginx-xff-plain');
    const forgedSpan = spanOf('nginx-xff-forged');
    expect(plainSpan, 'no span for the plain request').toBeDefined();
    expect(forgedSpan, 'no span for the forged request').toBeDefined();
    expect(attribute(plainSpan as OtlpSpan, 'client.address')).toBe('127.0.0.5');
    // nginx appended the address it saw; the replica believes nginx and no further.
    expect(attribute(forgedSpan as OtlpSpan, 'client.address')).toBe('127.0.0.5');
  }, 20_000);

  it('terminates TLS 1.2 and 1.3 only, with ECDHE AEAD suites for 1.2, and offers HTTP/2', async () => {
    const modern = await handshake(httpsPort, ca);
    expect(modern).toMatchObject({ protocol: 'TLSv1.3', alpn: 'h2' });
    const tls12 = await handshake(httpsPort, ca, { maxVersion: 'TLSv1.2' });
    expect(tls12).toMatchObject({ protocol: 'TLSv1.2' });
    expect('cipher' in tls12 && tls12.cipher).toMatch(/^ECDHE-RSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    // Static RSA key exchange (no forward secrecy) is refused by nginx even though the RSA certificate allows it.
    const staticRsa = await handshake(httpsPort, ca, {
      maxVersion: 'TLSv1.2',
      ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384',
    });
    expect(staticRsa).toMatchObject({ error: expect.stringMatching(/handshake failure/) });
    // TLS 1.1 is refused by the server (the client is allowed to offer it at security level 0).
    const tls11 = await handshake(httpsPort, ca, {
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    expect(tls11).toMatchObject({ error: expect.stringMatching(/protocol version/) });

    // A real HTTP/2 request.
    const session = http2Connect(`https://127.0.0.1:${httpsPort}`, { ca });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': '/health' });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('sends HSTS and security headers, and no nginx version', async () => {
    const health = await https('/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    expect(health.headers['strict-transport-security']).toMatch(/^max-age=\d{8,}/);
    expect(health.headers['x-content-type-options']).toBe('nosniff');
    expect(health.headers.server).toBe('nginx');
    const ready = await https('/ready');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
  });

  it('redirects plain HTTP to https, except its own /health', async () => {
    const http = (path: string) => send(httpRequest, `http://127.0.0.1:${httpPort}${path}`, {}, {});
    const redirect = await http('/mcp?x=1');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('https://127.0.0.1/mcp?x=1');
    const health = await http('/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
  });

  it('refuses a body over 4 MiB with 413 before any replica sees it, and passes one of exactly 4 MiB', async () => {
    const list = mcpRequest('tools/list', {});
    const exact = list.body.padEnd(MAX_BODY_BYTES, ' ');
    const fits = await https('/mcp', { ...list, body: exact });
    expect(fits.status, fits.body.slice(0, 300)).toBe(200);
    const tooLarge = await https('/mcp', { ...list, body: `${exact} ` });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers['content-type']).toBe('application/json');
    // nginx's JSON-RPC error, not mcpd's ("request body of N bytes exceeds ...").
    expect(JSON.parse(tooLarge.body)).toMatchObject({
      jsonrpc: '2.0',
      error: { code: -32000, message: 'request body exceeds the 4194304-byte limit' },
    });
  });

  it('does not expose /metrics (the replicas do serve it)', async () => {
    const direct = await send(httpRequest, `${replicas[0]?.url.replace(/\/mcp$/, '')}/metrics`, {}, {});
    expect(direct.status).toBe(200);
    const proxied = await https('/metrics');
    expect(proxied.status).toBe(404);
    expect(proxied.body).not.toMatch(/mcpd_/);
    expect((await https('/anything-else')).status).toBe(404);
  });

  it('rate-limits a burst per client address at the edge with 429', async () => {
    const list = mcpRequest('tools/list', {});
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 100 }, () => https('/mcp', { ...list, localAddress: '127.0.0.9' })),
    );
    const seconds = (Date.now() - started) / 1000;
    const statuses = replies.map((r) => r.status);
    const limited = replies.filter((r) => r.status === 429);
    const passed = statuses.filter((s) => s === 200).length;
    // mcpd's own limits are far away here: every 429 is nginx's.
    expect(new Set(statuses)).toEqual(new Set([200, 429]));
    // burst=40 nodelay at 20 r/s: the burst passes at once, then 20 a second; the rest are refused.
    expect(passed, statuses.join(',')).toBeGreaterThanOrEqual(40);
    expect(passed, `${seconds} s`).toBeLessThanOrEqual(41 + Math.ceil(20 * seconds) + 1);
    expect(limited.length).toBeGreaterThan(0);
    for (const reply of limited) {
      expect(reply.headers['retry-after']).toBe('1');
      expect(JSON.parse(reply.body)).toMatchObject({ error: { code: -32000, message: expect.stringMatching(/edge/) } });
    }
    // Another address has its own allowance.
    const other = await https('/mcp', { ...list, localAddress: '127.0.0.10' });
    expect(other.status).toBe(200);
  });

  it('logs one JSON line per request to stdout, without credentials or query strings', async () => {
    const secret = await https('/health?token=nginx-query-secret', {
      headers: { authorization: 'Bearer nginx-log-secret', 'x-request-id': 'nginx-log-check' },
    });
    expect(secret.status).toBe(200);
    // nginx writes the line after the answer went out: wait for it (the id marks it, nothing else does).
    await accessLogLine('nginx-log-check');
    const nginxOut = await accessLog();
    const lines = nginxOut.split('\n').filter((line) => line.length > 0);
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(nginxOut).not.toContain('nginx-log-secret');
    expect(nginxOut).not.toContain('nginx-query-secret');
    const mcp = entries.filter((e) => e.uri === '/mcp' && e.status === 200);
    expect(mcp.length).toBeGreaterThan(0);
    expect(mcp[0]).toMatchObject({
      method: 'POST',
      request_id: expect.stringMatching(/^\S+$/),
      upstream_addr: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      request_time: expect.any(Number),
    });
    expect(entries.some((e) => e.uri === '/health' && e.status === 200)).toBe(true);
  });
});
