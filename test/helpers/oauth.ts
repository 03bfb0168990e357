import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function signingKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

/** A JWKS endpoint on loopback, as an authorization server would publish it; counts its fetches. */
export interface JwksServer {
  readonly url: string;
  fetches: number;
  publish(keys: readonly SigningKey[]): void;
  close(): Promise<void>;
}

export async function startJwks(keys: readonly SigningKey[]): Promise<JwksServer> {
  let published = keys.map((key) => key.publicJwk);
  const state = { fetches: 0 };
  const server: Server = createServer((_req, res) => {
    state.fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get fetches() {
      return state.fetches;
    },
    set fetches(value: number) {
      state.fetches = value;
    },
    publish(next) {
      published = next.map((key) => key.publicJwk);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface MintOptions {
  readonly issuer?: string;
  readonly audience?: string;
  readonly subject?: string;
  readonly scope?: string;
  /** Seconds from now; negative for the past. */
  readonly expiresIn?: number;
  readonly notBefore?: number;
  readonly kid?: string;
  readonly extra?: JWTPayload;
}

/** Signs a JWT the way an authorization server would. */
export async function mint(key: SigningKey, options: MintOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...(options.scope === undefined ? {} : { scope: options.scope }), ...options.extra })
    .setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 300));
  if (options.issuer) jwt.setIssuer(options.issuer);
  if (options.audience) jwt.setAudience(options.audience);
  if (options.subject) jwt.setSubject(options.subject);
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(key.privateKey);
}

/** An unsecured JWT ("alg": "none"): header.payload with an empty signature. */
export function unsecured(payload: JWTPayload): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.`;
}
