import { type AuthConfig, DEFAULT_SCOPES, type Grant } from '../config/schema.js';
import type { Operation, Principal } from './types.js';

type Access = 'read' | 'write';

/** The grants in force: the configured ones, or the documented defaults for the auth mode. */
export function effectiveGrants(configured: readonly Grant[] | null, auth: AuthConfig): readonly Grant[] {
  if (configured) return configured;
  if (auth.mode === 'none') {
    // The single local caller: everything the roots themselves allow.
    return [{ principals: ['anonymous'], scopes: [], roots: ['*'], databases: ['*'], access: ['read', 'write'] }];
  }
  return [
    { principals: [], scopes: [DEFAULT_SCOPES.read], roots: ['*'], databases: ['*'], access: ['read'] },
    { principals: [], scopes: [DEFAULT_SCOPES.write], roots: ['*'], databases: ['*'], access: ['read', 'write'] },
  ];
}

/**
 * Who may do what on which root. A grant applies to a principal by name or by any of its scopes;
 * `read` covers listing. Grants only ever narrow: the root's own globs still decide every path.
 */
export class GrantTable {
  constructor(private readonly grants: readonly Grant[]) {}

  permits(principal: Principal, root: string, op: Operation): boolean {
    if (principal.local) return true;
    const needed: Access = op === 'write' ? 'write' : 'read';
    return this.grants.some(
      (grant) =>
        grant.access.includes(needed) &&
        (grant.roots.includes('*') || grant.roots.includes(root)) &&
        (grant.principals.includes(principal.id) || grant.scopes.some((scope) => principal.scopes.includes(scope))),
    );
  }

  /** Whether `principal` may query `database` (read only: a database is never written). */
  permitsDatabase(principal: Principal, database: string): boolean {
    if (principal.local) return true;
    return this.grants.some(
      (grant) =>
        grant.access.includes('read') &&
        (grant.databases.includes('*') || grant.databases.includes(database)) &&
        (grant.principals.includes(principal.id) || grant.scopes.some((scope) => principal.scopes.includes(scope))),
    );
  }

  /** Whether any root at all is open to `principal` for `op` (else: a scope challenge). */
  permitsAnywhere(principal: Principal, op: Operation, roots: readonly string[]): boolean {
    return roots.some((root) => this.permits(principal, root, op));
  }

  /** Scopes that would grant `op` somewhere: what a scope challenge asks for. */
  scopesGranting(op: Operation): string[] {
    const needed: Access = op === 'write' ? 'write' : 'read';
    return [...new Set(this.grants.filter((grant) => grant.access.includes(needed)).flatMap((grant) => grant.scopes))];
  }
}
