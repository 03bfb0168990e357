import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { type JwksServer, mint, type SigningKey, signingKey, startJwks, unsecured } from '../helpers/oauth.js';
import { type ServingProcess, serveMcpd } from '../helpers/process.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { demoCopy } from '../helpers/workspace.js';

const ISSUER = 'https://issuer.test.invalid';
const RESOURCE = 'https://mcp.test.invalid/mcp';
const METADATA = 'https://mcp.test.invalid/.well-known/oauth-protected-resource/mcp';

interface Answer {
  status: number;
  challenge: string | null;
  body: Record<string, unknown>;
  requestId: string | null;
}

/** A raw 2026-07-28 tools/call carrying `token` (when given) the way the spec says: a bearer header. */
async function callTool(
  url: string,
  token: string | undefined,
  name: string,
  args: Record<string, unknown> = {},
  query = '',
): Promise<Answer> {
  const response = await postModern(
    `${url}${query}`,
    'tools/call',
    { name, arguments: args },
    { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
  );
  const requestId = response.headers.get('x-request-id');
  const challenge = response.headers.get('www-authenticate');
  const status = response.status;
  const body =
    status === 200 ? ((await messagesOf(response))[0] ?? {}) : ((await response.json()) as Record<string, unknown>);
  return { status, challenge, body, requestId };
}

describe('OAuth resource server (auth.mode jwt), against the built binary', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let jwks: JwksServer;
  let serving: ServingProcess;
  let key: SigningKey;
  let rotated: SigningKey;
  let rogue: SigningKey;
  let auditFile: string;

  const token = (options: Parameters<typeof mint>[1] = {}, signer: SigningKey = key) =>
    mint(signer, { issuer: ISSUER, audience: RESOURCE, subject: 'alice', scope: 'mcpd:read', ...options });

  beforeAll(async () => {
    demo = await demoCopy();
    key = await signingKey('k1');
    rotated = await signingKey('k2', 'ES256');
    rogue = await signingKey('k1');
    jwks = await startJwks([key]);
    auditFile = join(demo.dir, 'auth-audit.log');
    const config = join(demo.dir, 'jwt.yaml');
    await writeFile(
      config,
      [
        'server:',
        '  host: 127.0.0.1',
        `  publicUrl: ${RESOURCE}`,
        'auth:',
        '  mode: jwt',
        '  jwt:',
        `    issuer: ${ISSUER}`,
        `    jwksUrl: ${jwks.url}`,
        '    jwksRefetchCooldownMs: 0',
        'accessPolicy:',
        '  read: ["*.md", "*.json", "*.yaml", "*.csv"]',
        '  write: ["workspace/**/*"]',
        'roots:',
        '  - { name: MCP Demo Project, uri: ./workspace/mcp-demo }',
        `audit: { sink: file, path: ${auditFile} }`,
        '',
      ].join('\n'),
    );
    serving = await serveMcpd(['--config', config, '--port', '0']);
  });
  afterAll(async () => {
    await serving?.stop();
    await jwks?.close();
    await demo?.cleanup();
  });

  async function expectAudited(answer: Answer, rule: string): Promise<void> {
    const [record] = await waitForAudit(auditFile, (r) => r.requestId === answer.requestId);
    expect(record).toMatchObject({ decision: 'deny', outcome: 'denied', rule });
  }

  it('publishes RFC 9728 protected-resource metadata, at both well-known paths', async () => {
    const base = serving.url.replace(/\/mcp$/, '');
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        resource: RESOURCE,
        authorization_servers: [ISSUER],
        scopes_supported: ['mcpd:read', 'mcpd:write'],
        bearer_methods_supported: ['header'],
        resource_name: 'mcpd',
      });
    }
  });

  it('asks for a token with 401 and the resource metadata when none is sent', async () => {
    const answer = await callTool(serving.url, undefined, 'list_roots');
    expect(answer.status).toBe(401);
    expect(answer.challenge).toBe(`Bearer resource_metadata="${METADATA}"`);
    await expectAudited(answer, 'auth:missing');
  });

  it('lets a valid token in, and the principal is in the audit record', async () => {
    const answer = await callTool(serving.url, await token(), 'read_file', { path: 'README.md' });
    expect(answer.status).toBe(200);
    expect(answer.body.result).toMatchObject({ content: [{ type: 'text' }, { type: 'text' }] });
    const [record] = await waitForAudit(auditFile, (r) => r.requestId === answer.requestId);
    expect(record).toMatchObject({ principal: 'alice', decision: 'allow', tool: 'read_file', outcome: 'ok' });
  });

  it.each([
    ['a token valid for two days (above jwt.maxLifetimeSec)', { expiresIn: 2 * 86_400 }, 'auth:lifetime'],
    ['an expired token', { expiresIn: -600 }, 'auth:expired'],
    ['a token not valid yet', { notBefore: 600 }, 'auth:not-yet-valid'],
    ['a token for another resource', { audience: 'https://other.test.invalid/mcp' }, 'auth:wrong-audience'],
    ['a token from another issuer', { issuer: 'https://evil.test.invalid' }, 'auth:wrong-issuer'],
    ['a token with an unknown kid', { kid: 'no-such-key' }, 'auth:unknown-kid'],
  ])('refuses %s with 401 invalid_token', async (_label, options, rule) => {
    const answer = await callTool(serving.url, await token(options), 'list_roots');
    expect(answer.status).toBe(401);
    expect(answer.challenge).toMatch(
      new RegExp(`^Bearer resource_metadata="${METADATA}", error="invalid_token", error_description="[^"]+"$`),
    );
    expect(answer.body.error).toBe('invalid_token');
    await expectAudited(answer, rule);
  });

  it('refuses a bad signature, "alg: none" and an HMAC token', async () => {
    const forged = await callTool(serving.url, await token({}, rogue), 'list_roots');
    expect(forged.status).toBe(401);
    await expectAudited(forged, 'auth:bad-signature');
    const none = await callTool(
      serving.url,
      unsecured({ iss: ISSUER, aud: RESOURCE, sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 300 }),
      'list_roots',
    );
    expect(none.status).toBe(401);
    await expectAudited(none, 'auth:algorithm');
    const hmac = await new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('a-guessable-shared-secret-of-32-bytes!'));
    const confused = await callTool(serving.url, hmac, 'list_roots');
    expect(confused.status).toBe(401);
    await expectAudited(confused, 'auth:algorithm');
  });

  it('refetches the keys on an unknown kid, so a rotated key works at once', async () => {
    const before = jwks.fetches;
    jwks.publish([key, rotated]);
    const answer = await callTool(serving.url, await token({}, rotated), 'list_roots');
    expect(answer.status).toBe(200);
    expect(jwks.fetches).toBeGreaterThan(before);
  });

  it('challenges a token without the needed scope with 403 insufficient_scope', async () => {
    const answer = await callTool(serving.url, await token({ scope: 'mcpd:read' }), 'write_file', {
      path: 'workspace/x.md',
      content: 'x',
    });
    expect(answer.status).toBe(403);
    expect(answer.challenge).toContain('error="insufficient_scope"');
    expect(answer.challenge).toContain('scope="mcpd:read mcpd:write"');
    expect(answer.challenge).toContain(`resource_metadata="${METADATA}"`);
    await expectAudited(answer, 'grant:insufficient-scope');
    const allowed = await callTool(serving.url, await token({ scope: 'mcpd:write' }), 'write_file', {
      path: 'workspace/x.md',
      content: 'x',
    });
    expect(allowed.status).toBe(200);
    expect(allowed.body.result).toMatchObject({ structuredContent: { created: true } });
  });

  it('rejects a token in the query string with 400, before looking at it', async () => {
    const valid = await token();
    const answer = await callTool(serving.url, undefined, 'list_roots', {}, `?access_token=${valid}`);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_request');
    expect(answer.challenge).toContain('error="invalid_request"');
    await expectAudited(answer, 'auth:token-in-query');
  });

  it('serves the official SDK client holding a bearer token', async () => {
    const client = new Client(
      { name: 'sdk-with-token', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await client.connect(
      new StreamableHTTPClientTransport(new URL(serving.url), {
        requestInit: { headers: { authorization: `Bearer ${await token({ subject: 'bob' })}` } },
      }),
    );
    const result = (await client.callTool({ name: 'get_file_info', arguments: { path: 'README.md' } })) as {
      isError?: boolean;
    };
    expect(result.isError).toBeFalsy();
    await client.close();
    const [record] = await waitForAudit(auditFile, (r) => r.client === 'sdk-with-token');
    expect(record).toMatchObject({ principal: 'bob', tool: 'get_file_info', decision: 'allow' });
  });

  it('never writes a token to the audit log or the server log', async () => {
    const secret = await token({ subject: 'carol' });
    await callTool(serving.url, secret, 'list_roots');
    const refused = await callTool(serving.url, `${secret}x`, 'list_roots');
    // The refusal is audited (the sink is asynchronous): read the log once its record is in it.
    expect(await waitForAudit(auditFile, (r) => r.requestId === refused.requestId)).toHaveLength(1);
    const { readFile } = await import('node:fs/promises');
    const audit = await readFile(auditFile, 'utf8');
    const signature = secret.split('.')[2] as string;
    expect(audit).not.toContain(signature);
    expect(serving.stderr()).not.toContain(signature);
  });
});

describe('API keys and per-principal grants (auth.mode apiKeys), against the built binary', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let serving: ServingProcess;
  let auditFile: string;
  const sha = (key: string) => createHash('sha256').update(key).digest('hex');

  beforeAll(async () => {
    demo = await demoCopy();
    auditFile = join(demo.dir, 'keys-audit.log');
    await writeFile(join(demo.dir, 'ops.sha256'), `${sha('ops-key')}\n`);
    const config = join(demo.dir, 'keys.yaml');
    await writeFile(
      config,
      [
        'auth:',
        '  mode: apiKeys',
        '  apiKeys:',
        `    - { principal: reader, sha256: ${sha('reader-key')}, scopes: [team:read] }`,
        '    - { principal: ops, sha256File: ./ops.sha256 }',
        '    - { principal: ci, sha256Env: MCPD_TEST_CI_KEY_SHA256, scopes: [team:read] }',
        `    - { principal: project-only, sha256: ${sha('project-key')} }`,
        'grants:',
        '  - { scopes: [team:read], access: [read] }',
        '  - { principals: [ops], roots: [Project], access: [read, write] }',
        '  - { principals: [ops], roots: [Scratch], access: [read] }',
        '  - { principals: [project-only], roots: [Project], access: [read] }',
        'accessPolicy:',
        '  read: ["*.md", "*.yaml"]',
        '  write: ["**/*"]',
        'roots:',
        '  - { name: Project, uri: ./workspace/mcp-demo }',
        '  - { name: Scratch, uri: ./shared/templates }',
        `audit: { sink: file, path: ${auditFile} }`,
        '',
      ].join('\n'),
    );
    serving = await serveMcpd(['--config', config, '--port', '0'], { MCPD_TEST_CI_KEY_SHA256: sha('ci-key') });
  });
  afterAll(async () => {
    await serving?.stop();
    await demo?.cleanup();
  });

  it('accepts keys given inline, from a file and from the environment; refuses others', async () => {
    for (const [key, principal] of [
      ['reader-key', 'reader'],
      ['ops-key', 'ops'],
      ['ci-key', 'ci'],
    ] as const) {
      const answer = await callTool(serving.url, key, 'get_file_info', { path: 'README.md', root: 'Project' });
      expect(answer.status, key).toBe(200);
      const [record] = await waitForAudit(auditFile, (r) => r.requestId === answer.requestId);
      expect(record?.principal).toBe(principal);
    }
    const wrong = await callTool(serving.url, 'not-a-key', 'list_roots');
    expect(wrong.status).toBe(401);
    expect(wrong.challenge).toBe('Bearer realm="mcpd", error="invalid_token", error_description="unknown API key"');
  });

  it('gives each principal what its grants allow, never more than the root allows', async () => {
    const write = (key: string, root: string) =>
      callTool(serving.url, key, 'write_file', { path: 'note.md', root, content: `by ${key}` });
    expect((await write('ops-key', 'Project')).body.result).toMatchObject({ structuredContent: { created: true } });
    // ops may read Scratch but not write it: a tool error naming the grant, audited.
    const scratch = await write('ops-key', 'Scratch');
    expect(scratch.status).toBe(200);
    expect(scratch.body.result).toMatchObject({ isError: true });
    const [record] = await waitForAudit(auditFile, (r) => r.requestId === scratch.requestId);
    expect(record).toMatchObject({ principal: 'ops', decision: 'deny', rule: 'grant:none', root: 'Scratch' });
    // reader has no write grant anywhere, and no scope would give one: nothing to challenge for, so the
    // grants refuse the call as a tool error.
    const reader = await write('reader-key', 'Project');
    expect(reader.status).toBe(200);
    expect(reader.body.result).toMatchObject({ isError: true });
    // list_roots shows a principal only the roots it may read.
    const roots = await callTool(serving.url, 'project-key', 'list_roots');
    expect((roots.body.result as { structuredContent: { roots: { name: string }[] } }).structuredContent.roots).toEqual(
      [expect.objectContaining({ name: 'Project' })],
    );
    const hidden = await callTool(serving.url, 'project-key', 'read_file', { path: 'README.md', root: 'Scratch' });
    expect(hidden.body.result).toMatchObject({ isError: true });
    // A secret excluded by the root stays excluded whatever the grant.
    const env = await callTool(serving.url, 'ops-key', 'read_file', { path: '.env', root: 'Project' });
    expect(env.body.result).toMatchObject({ isError: true });
  });
});
