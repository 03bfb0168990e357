import type { Principal } from '../policy/types.js';

/** Why a request was not let in, in RFC 6750 terms. */
export type AuthFailureCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export type AuthOutcome =
  | { readonly ok: true; readonly principal: Principal; readonly expiresAt?: number }
  | {
      readonly ok: false;
      /** 503: we could not check (the signing keys are unreachable); not the client's fault. */
      readonly status: 400 | 401 | 403 | 503;
      /** Absent when the request carried no credentials at all (RFC 6750 3.1: no error code then). */
      readonly code?: AuthFailureCode;
      /** Safe to send to the client: never echoes the token. */
      readonly description: string;
      /** For the audit record: e.g. auth:missing, auth:expired, auth:bad-signature. */
      readonly rule: string;
    };

/** Turns the Authorization header of a request into a principal, or says why not. */
export interface Authenticator {
  readonly mode: 'none' | 'apiKeys' | 'jwt';
  authenticate(authorization: string | undefined): Promise<AuthOutcome>;
  /** Null when the dependencies it needs (a JWKS endpoint) are reachable; else why not. */
  notReadyReason(): Promise<string | null>;
}

/** Extracts a bearer token; distinguishes "none given" from "given badly". */
export function bearerToken(
  authorization: string | undefined,
): { token: string } | { missing: true } | { malformed: true } {
  if (authorization === undefined || authorization.trim() === '') return { missing: true };
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(authorization);
  if (!match?.[1]) return { malformed: true };
  return { token: match[1] };
}

export const MISSING: AuthOutcome = {
  ok: false,
  status: 401,
  description: 'authentication required',
  rule: 'auth:missing',
};

export const MALFORMED: AuthOutcome = {
  ok: false,
  status: 401,
  code: 'invalid_token',
  description: 'the Authorization header is not a bearer token',
  rule: 'auth:malformed',
};
