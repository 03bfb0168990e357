import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { JwtSettings } from '../config/schema.js';
import { type Authenticator, type AuthOutcome, bearerToken, MALFORMED, MISSING } from './types.js';

const JWKS_TIMEOUT_MS = 5_000;
/** A verified token is trusted again without a signature check for at most this long... */
const VERIFIED_TTL_MS = 60_000;
/** ...and at most this many tokens are remembered. */
const VERIFIED_MAX = 10_000;

interface Verified {
  readonly principal: { id: string; scopes: string[] };
  readonly expiresAt: number;
  /** When this entry stops being trusted: the token's own expiry or the TTL, whichever is first. */
  readonly trustUntilMs: number;
}

function unavailable(): AuthOutcome {
  return {
    ok: false,
    status: 503,
    description: 'the signing keys could not be fetched; try again shortly',
    rule: 'auth:jwks-unavailable',
  };
}

function failure(rule: string, description: string): AuthOutcome {
  return { ok: false, status: 401, code: 'invalid_token', description, rule };
}

/** Space-separated `scope` (RFC 8693) or an `scp` array, as authorization servers differ. */
function scopesOf(payload: Record<string, unknown>): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ').filter(Boolean);
  if (Array.isArray(payload.scp)) return payload.scp.filter((s): s is string => typeof s === 'string');
  return [];
}

/**
 * mcpd as an OAuth 2.1 resource server: verifies bearer JWTs with jose. The audience must be our
 * canonical resource URL (a token minted for another resource is refused), the issuer must match,
 * exp/nbf are honoured with a small skew, and only the configured asymmetric algorithms are
 * accepted, never "none".
 */
export class JwtAuthenticator implements Authenticator {
  readonly mode = 'jwt';
  private readonly keys: JWTVerifyGetKey & {
    reload?: () => Promise<void>;
    fresh?: boolean;
    jwks?: () => unknown;
  };
  private readonly remote: boolean;
  /** Tokens verified recently, by their SHA-256: clients resend the same token on every request. */
  private readonly verified = new Map<string, Verified>();

  constructor(private readonly settings: JwtSettings) {
    if (settings.jwks) {
      this.keys = createLocalJWKSet(settings.jwks as unknown as JSONWebKeySet);
      this.remote = false;
    } else {
      this.keys = createRemoteJWKSet(new URL(settings.jwksUrl as string), {
        cacheMaxAge: settings.jwksCacheMaxAgeMs,
        cooldownDuration: settings.jwksRefetchCooldownMs,
        timeoutDuration: JWKS_TIMEOUT_MS,
      });
      this.remote = true;
    }
  }

  async authenticate(authorization: string | undefined): Promise<AuthOutcome> {
    const presented = bearerToken(authorization);
    if ('missing' in presented) return MISSING;
    if ('malformed' in presented) return MALFORMED;
    const cacheKey = createHash('sha256').update(presented.token).digest('base64url');
    const known = this.verified.get(cacheKey);
    if (known) {
      if (Date.now() < known.trustUntilMs) return { ok: true, principal: known.principal, expiresAt: known.expiresAt };
      this.verified.delete(cacheKey);
    }
    // Refuse a disallowed algorithm (none, HMAC) before any key is looked up.
    let algorithm: unknown;
    try {
      algorithm = decodeProtectedHeader(presented.token).alg;
    } catch {
      return failure('auth:invalid', 'the token is not a valid JWT');
    }
    if (typeof algorithm !== 'string' || !(this.settings.algorithms as readonly string[]).includes(algorithm)) {
      return failure('auth:algorithm', 'the token algorithm is not accepted');
    }
    try {
      const { payload } = await jwtVerify(presented.token, this.keys, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: [...this.settings.algorithms],
        clockTolerance: this.settings.clockToleranceSec,
        requiredClaims: ['exp'],
      });
      // A token valid for longer than maxLifetimeSec is refused: a stolen one would be good for too long.
      const exp = payload.exp as number;
      const issued = typeof payload.iat === 'number' ? payload.iat : Date.now() / 1000;
      if (exp - issued > this.settings.maxLifetimeSec + this.settings.clockToleranceSec) {
        return failure(
          'auth:lifetime',
          `the token is valid for more than ${this.settings.maxLifetimeSec} s (jwt.maxLifetimeSec)`,
        );
      }
      const id = payload[this.settings.principalClaim];
      if (typeof id !== 'string' || id === '') {
        return failure('auth:no-principal', `the token has no "${this.settings.principalClaim}" claim`);
      }
      const principal = { id, scopes: scopesOf(payload) };
      // exp is a required claim, so it is there.
      const expiresAt = payload.exp as number;
      this.remember(cacheKey, {
        principal,
        expiresAt,
        trustUntilMs: Math.min(expiresAt * 1000, Date.now() + VERIFIED_TTL_MS),
      });
      return { ok: true, principal, expiresAt };
    } catch (error) {
      return this.describe(error);
    }
  }

  private remember(key: string, entry: Verified): void {
    if (this.verified.size >= VERIFIED_MAX) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(key, entry);
  }

  async notReadyReason(): Promise<string | null> {
    if (!this.remote || this.keys.fresh) return null;
    try {
      await this.keys.reload?.();
      return null;
    } catch (error) {
      return `the JWKS endpoint is unreachable (${(error as Error).message})`;
    }
  }

  private describe(error: unknown): AuthOutcome {
    if (error instanceof errors.JWTExpired) return failure('auth:expired', 'the token has expired');
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') return failure('auth:not-yet-valid', 'the token is not valid yet');
      if (error.claim === 'aud') return failure('auth:wrong-audience', 'the token was issued for another resource');
      if (error.claim === 'iss') return failure('auth:wrong-issuer', 'the token was issued by an untrusted issuer');
      return failure(`auth:claim-${error.claim}`, `the token's "${error.claim}" claim is not acceptable`);
    }
    if (error instanceof errors.JWSSignatureVerificationFailed)
      return failure('auth:bad-signature', 'the token signature is invalid');
    if (error instanceof errors.JOSEAlgNotAllowed)
      return failure('auth:algorithm', 'the token algorithm is not accepted');
    // No key matches, but no key set was ever fetched either: that is the endpoint's failure, not the token's.
    if (error instanceof errors.JWKSNoMatchingKey && this.remote && this.keys.jwks?.() === undefined) {
      return unavailable();
    }
    if (error instanceof errors.JWKSNoMatchingKey) return failure('auth:unknown-kid', 'no known key matches the token');
    // The keys could not be fetched (timeout, refused, DNS): the token may be fine; we cannot tell.
    if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError)) return unavailable();
    return failure('auth:invalid', 'the token is not a valid JWT');
  }
}
