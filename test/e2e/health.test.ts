import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../helpers/audit.js';
import { mint, signingKey } from '../helpers/oauth.js';
import { freePort } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { demoCopy } from '../helpers/workspace.js';

describe('/health and /ready', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  it('readiness fails while a root is unreachable and recovers when it is back; liveness does not care', async () => {
    const ready = async () => {
      const response = await fetch(`${server.base}/ready`);
      return { status: response.status, body: (await response.json()) as { reason?: string } };
    };
    expect((await ready()).status).toBe(200);
    await rename(demo.templates, `${demo.templates}.away`);
    try {
      expect(await ready()).toEqual({
        status: 503,
        body: { status: 'not ready', reason: 'root "Shared Templates" is not reachable' },
      });
      expect((await fetch(`${server.base}/health`)).status).toBe(200);
    } finally {
      await rename(`${demo.templates}.away`, demo.templates);
    }
    expect((await ready()).status).toBe(200);
  });

  it('probes are not audited and need no credentials', async () => {
    await server.audit.flush();
    const before = (await readAudit(server.auditFile)).length;
    for (let i = 0; i < 5; i++) {
      await fetch(`${server.base}/health`);
      await fetch(`${server.base}/ready`);
    }
    await server.audit.flush();
    expect((await readAudit(server.auditFile)).length).toBe(before);
  });

  it('readiness fails while the JWKS endpoint of a jwt server cannot be reached', async () => {
    const config = join(demo.dir, 'jwks-down.yaml');
    await writeFile(
      config,
      [
        'server: { publicUrl: "https://mcp.test.invalid/mcp" }',
        'auth:',
        '  mode: jwt',
        // A port nothing listens on.
        `  jwt: { issuer: "https://issuer.test.invalid", jwksUrl: "http://127.0.0.1:${await freePort()}/jwks.json" }`,
        'roots: [{ name: Project, uri: ./workspace/mcp-demo }]',
        '',
      ].join('\n'),
    );
    const jwt = await startServer(config);
    try {
      const response = await fetch(`${jwt.base}/ready`);
      expect(response.status).toBe(503);
      expect(((await response.json()) as { reason: string }).reason).toMatch(/^the JWKS endpoint is unreachable/);
      expect((await fetch(`${jwt.base}/health`)).status).toBe(200);
      // A token cannot be checked without the keys: 503, not a 401 that would send the client to re-authenticate.
      const token = await mint(await signingKey('k1', 'ES256'), {
        issuer: 'https://issuer.test.invalid',
        audience: 'https://mcp.test.invalid/mcp',
        subject: 'someone',
      });
      const call = await fetch(jwt.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: '{}',
      });
      expect(call.status).toBe(503);
      expect(call.headers.get('retry-after')).toBe('5');
      expect(await call.json()).toMatchObject({ error: 'temporarily_unavailable' });
    } finally {
      await jwt.close();
    }
  });
});
