/**
 * The cost of authentication on a cheap tool call: the same built binary serving the demo with
 * auth.mode none, apiKeys and jwt, driven by the same load, in interleaved rounds so the machine's
 * noise falls on all three alike. Reported as ratios against `none`, measured in this run.
 */
import { createHash } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { compare } from './harness.js';

const RESOURCE = 'https://mcp.bench.invalid/mcp';
const ISSUER = 'https://issuer.bench.invalid';
const API_KEY = 'bench-api-key-0123456789';

export async function authOverhead(): Promise<void> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'b1', alg: 'ES256' }] });
  const jwt = await new SignJWT({ scope: 'mcpd:read' })
    .setProtectedHeader({ alg: 'ES256', kid: 'b1' })
    .setIssuer(ISSUER)
    .setAudience(RESOURCE)
    .setSubject('bench')
    .setExpirationTime('1h')
    .sign(privateKey);
  const keyHash = createHash('sha256').update(API_KEY).digest('hex');
  await compare({
    title: 'auth overhead',
    baseline: 'none',
    files: { 'jwks.json': jwks },
    variants: [
      { name: 'none', config: '' },
      {
        name: 'apiKeys',
        config: `auth:\n  mode: apiKeys\n  apiKeys:\n    - { principal: bench, sha256: ${keyHash}, scopes: [mcpd:read] }\n`,
        token: API_KEY,
      },
      {
        name: 'jwt',
        config: `server: { publicUrl: ${RESOURCE} }\nauth:\n  mode: jwt\n  jwt: { issuer: ${ISSUER}, jwksFile: ./jwks.json }\n`,
        token: jwt,
      },
    ],
  });
}
