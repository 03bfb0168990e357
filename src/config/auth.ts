import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { positiveInt, scopeToken } from './fields.js';
import { oneJwksSource, oneKeyHashSource } from './rules.js';

/** The `auth` section: no authentication, API keys, or bearer JWTs. */

export const apiKeySchema = z
  .strictObject({
    principal: z.string().min(1).max(200).describe('The name this key authenticates as (in audit records and grants).'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (the SHA-256 of the key)')
      .optional()
      .describe('SHA-256 of the key, hex. The key itself is never stored.'),
    sha256File: z.string().min(1).optional().describe('File holding the hex SHA-256; relative to the config file.'),
    sha256Env: z.string().min(1).optional().describe('Environment variable holding the hex SHA-256.'),
    scopes: z.array(scopeToken).default([]).describe('Scopes the key carries, e.g. `mcpd:read`.'),
  })
  .superRefine(oneKeyHashSource);

export const jwtSchema = z
  .strictObject({
    issuer: z.string().min(1).describe('Expected "iss" claim.'),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe('Expected "aud" claim; the canonical resource URL (server.publicUrl) when omitted.'),
    jwksUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('Where the signing keys are fetched (cached; refetched on an unknown kid).'),
    jwksFile: z.string().min(1).optional().describe('A JWKS document on disk; relative to the config file.'),
    algorithms: z
      .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
      .min(1)
      .default(['RS256', 'PS256', 'ES256', 'EdDSA'])
      .describe('Accepted signature algorithms; "none" and HMAC are never accepted.'),
    clockToleranceSec: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(DEFAULTS.jwtClockToleranceSec)
      .describe('Clock skew allowed on `exp` and `nbf`.'),
    maxLifetimeSec: positiveInt
      .default(DEFAULTS.jwtMaxLifetimeSec)
      .describe('Tokens valid for longer than this (exp - iat, or exp - now without iat) are refused.'),
    principalClaim: z.string().min(1).default('sub').describe('The claim that names the principal.'),
    jwksCacheMaxAgeMs: positiveInt
      .default(DEFAULTS.jwksCacheMaxAgeMs)
      .describe('How long fetched keys are used before they are fetched again.'),
    jwksRefetchCooldownMs: z
      .number()
      .int()
      .min(0)
      .default(DEFAULTS.jwksRefetchCooldownMs)
      .describe('A token with an unknown kid refetches the keys at most this often (key rotation vs. abuse).'),
    authorizationServers: z
      .array(z.url())
      .optional()
      .describe('Advertised in the protected-resource metadata; [issuer] when omitted.'),
  })
  .superRefine(oneJwksSource);

/** The union's description is the one of its discriminator, `auth.mode`, in docs/configuration.md. */
export const authSchema = z
  .discriminatedUnion('mode', [
    z.strictObject({ mode: z.literal('none').describe('No authentication: only allowed on a loopback bind.') }),
    z.strictObject({
      mode: z.literal('apiKeys'),
      apiKeys: z.array(apiKeySchema).min(1).describe('Bearer keys, each stored as its SHA-256.'),
    }),
    z.strictObject({
      mode: z.literal('jwt'),
      jwt: jwtSchema.describe('OAuth 2.1 resource server: verify bearer JWTs.'),
    }),
  ])
  .describe('How HTTP callers are identified.');
