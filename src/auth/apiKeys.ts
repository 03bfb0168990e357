import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKey } from '../config/schema.js';
import { type Authenticator, type AuthOutcome, bearerToken, MALFORMED, MISSING } from './types.js';

/**
 * Bearer API keys, stored only as SHA-256 hashes. The presented key is hashed and compared with
 * every stored hash in constant time, so neither the comparison nor its position leaks timing.
 */
export class ApiKeyAuthenticator implements Authenticator {
  readonly mode = 'apiKeys';
  private readonly keys: readonly { hash: Buffer; key: ApiKey }[];

  constructor(keys: readonly ApiKey[]) {
    this.keys = keys.map((key) => ({ hash: Buffer.from(key.sha256, 'hex'), key }));
  }

  async authenticate(authorization: string | undefined): Promise<AuthOutcome> {
    const presented = bearerToken(authorization);
    if ('missing' in presented) return MISSING;
    if ('malformed' in presented) return MALFORMED;
    const hash = createHash('sha256').update(presented.token).digest();
    let found: ApiKey | undefined;
    for (const candidate of this.keys) {
      if (timingSafeEqual(hash, candidate.hash) && found === undefined) found = candidate.key;
    }
    if (!found) {
      return {
        ok: false,
        status: 401,
        code: 'invalid_token',
        description: 'unknown API key',
        rule: 'auth:unknown-key',
      };
    }
    return { ok: true, principal: { id: found.principal, scopes: found.scopes } };
  }

  async notReadyReason(): Promise<string | null> {
    return null;
  }
}
