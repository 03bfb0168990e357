import { getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/server';
import { type AuthConfig, DEFAULT_SCOPES } from '../config/schema.js';
import { ANONYMOUS } from '../policy/types.js';
import { ApiKeyAuthenticator } from './apiKeys.js';
import type { Authenticator, AuthOutcome } from './types.js';

export type { Authenticator, AuthOutcome } from './types.js';

/** auth.mode none: everyone is the local, anonymous caller (only ever on a loopback bind). */
class NoAuthenticator implements Authenticator {
  readonly mode = 'none';
  async authenticate(): Promise<AuthOutcome> {
    return { ok: true, principal: ANONYMOUS };
  }
  async notReadyReason(): Promise<string | null> {
    return null;
  }
}

/** The authenticator for `auth`; the JWT library is loaded only when JWTs are configured. */
export async function createAuthenticator(auth: AuthConfig): Promise<Authenticator> {
  switch (auth.mode) {
    case 'none':
      return new NoAuthenticator();
    case 'apiKeys':
      return new ApiKeyAuthenticator(auth.apiKeys);
    case 'jwt': {
      const { JwtAuthenticator } = await import('./jwt.js');
      return new JwtAuthenticator(auth.jwt);
    }
  }
}

/** Where the RFC 9728 metadata of a resource lives (path-suffixed form). */
export function metadataUrlFor(publicUrl: string): string {
  return getOAuthProtectedResourceMetadataUrl(new URL(publicUrl));
}

/** The paths the metadata is served at: the bare well-known path and the one suffixed with the resource's path. */
export function metadataPaths(publicUrl: string): string[] {
  const suffixed = new URL(metadataUrlFor(publicUrl)).pathname;
  return [...new Set(['/.well-known/oauth-protected-resource', suffixed])];
}

/**
 * RFC 9728 Protected Resource Metadata; null when mcpd is not an OAuth resource server.
 * `grantScopes`: the scopes configured grants use, or null when the default scopes apply.
 */
export function protectedResourceMetadata(auth: AuthConfig, publicUrl: string, grantScopes: readonly string[] | null) {
  if (auth.mode !== 'jwt') return null;
  return {
    resource: publicUrl,
    authorization_servers: [...auth.jwt.authorizationServers],
    scopes_supported: grantScopes === null ? [DEFAULT_SCOPES.read, DEFAULT_SCOPES.write] : [...new Set(grantScopes)],
    bearer_methods_supported: ['header'],
    resource_name: 'mcpd',
  };
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

/**
 * The WWW-Authenticate challenge for a refusal: always the resource metadata pointer (OAuth),
 * the error code when credentials were presented, and the scopes an insufficient token lacks.
 */
export function challengeHeader(
  auth: AuthConfig,
  publicUrl: string,
  failure: { code?: string; description?: string; scopes?: readonly string[] },
): string {
  const params: string[] = [];
  if (auth.mode === 'jwt') params.push(`resource_metadata=${quoted(metadataUrlFor(publicUrl))}`);
  else params.push(`realm=${quoted('mcpd')}`);
  if (failure.code) params.push(`error=${quoted(failure.code)}`);
  if (failure.code && failure.description) params.push(`error_description=${quoted(failure.description)}`);
  if (failure.scopes && failure.scopes.length > 0) params.push(`scope=${quoted(failure.scopes.join(' '))}`);
  return `Bearer ${params.join(', ')}`;
}
