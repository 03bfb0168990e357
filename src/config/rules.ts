import type * as z from 'zod';
import type { ConfigProblem } from './problems.js';
import type { ParsedConfig } from './schema.js';
import { isLoopbackHost } from './server.js';

/**
 * Every rule that relates two or more settings, in one place. The section schemas attach the rules
 * within a section (`.superRefine(rule)`); configSchema attaches `configRules`, which relate
 * sections; `oneKeyPerPrincipal` runs in the resolution step, on the hashes as read.
 */

type Context = z.core.$RefinementCtx;

/** auth.apiKeys[N]: a key hash comes from exactly one place. */
export function oneKeyHashSource(
  key: { readonly sha256?: string; readonly sha256File?: string; readonly sha256Env?: string },
  ctx: Context,
): void {
  const sources = [key.sha256, key.sha256File, key.sha256Env].filter((v) => v !== undefined).length;
  if (sources !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of sha256, sha256File, sha256Env' });
}

/** auth.jwt: the signing keys come from exactly one place. */
export function oneJwksSource(jwt: { readonly jwksUrl?: string; readonly jwksFile?: string }, ctx: Context): void {
  if ((jwt.jwksUrl === undefined) === (jwt.jwksFile === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'give exactly one of jwksUrl, jwksFile' });
  }
}

/** grants[N]: a grant names whom it applies to. */
export function grantAppliesToSomeone(
  grant: { readonly principals: readonly string[]; readonly scopes: readonly string[] },
  ctx: Context,
): void {
  if (grant.principals.length === 0 && grant.scopes.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'a grant needs principals or scopes to apply to' });
  }
}

/** roots[N].name, databases[N].name: each names one thing (grants and URIs refer to it). */
function uniqueNames(items: readonly { readonly name: string }[], key: string, what: string, ctx: Context): void {
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const first = seen.get(item.name);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [key, index, 'name'],
        message: `duplicate ${what} name (also ${key}[${first}].name)`,
      });
    }
    seen.set(item.name, index);
  });
}

/** Rules across sections, on the whole parsed config. */
export function configRules(config: ParsedConfig, ctx: Context): void {
  uniqueNames(config.roots, 'roots', 'root', ctx);
  uniqueNames(config.databases, 'databases', 'database', ctx);
  if (config.audit.sink === 'file' && !config.audit.path) {
    ctx.addIssue({ code: 'custom', path: ['audit', 'path'], message: 'required when audit.sink is "file"' });
  }
  if (config.audit.rotate !== undefined && config.audit.sink !== 'file') {
    ctx.addIssue({
      code: 'custom',
      path: ['audit', 'rotate'],
      message: 'only a file sink rotates (audit.sink "file")',
    });
  }
  if (config.audit.rotate !== undefined && !config.audit.rotate.maxBytes && !config.audit.rotate.interval) {
    ctx.addIssue({ code: 'custom', path: ['audit', 'rotate'], message: 'give maxBytes, interval or both' });
  }
  if (config.auth.mode === 'jwt' && config.server.publicUrl === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', 'publicUrl'],
      message: 'required with auth.mode jwt: the URL clients use for /mcp, which tokens must name as their audience',
    });
  }
  if (config.server.headersTimeoutMs <= config.server.keepAliveTimeoutMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', 'headersTimeoutMs'],
      message: 'must be above server.keepAliveTimeoutMs, or Node may cut a reused connection mid-request',
    });
  }
  if (config.auth.mode === 'none' && !isLoopbackHost(config.server.host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', 'host'],
      message: `refusing to bind a non-loopback address without authentication (auth.mode is "none"); bind 127.0.0.1 or put mcpd behind an authenticating proxy on loopback`,
    });
  }
  const rootNames = new Set(config.roots.map((root) => root.name));
  const databases = new Set(config.databases.map((database) => database.name));
  config.grants?.forEach((grant, index) => {
    grant.databases.forEach((name, databaseIndex) => {
      if (name !== '*' && !databases.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['grants', index, 'databases', databaseIndex],
          message: 'no database has this name',
        });
      }
    });
    grant.roots.forEach((name, rootIndex) => {
      if (name !== '*' && !rootNames.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['grants', index, 'roots', rootIndex],
          message: 'no root has this name',
        });
      }
    });
  });
  if (config.limits.listPageSize > config.limits.maxListPageSize) {
    ctx.addIssue({
      code: 'custom',
      path: ['limits', 'listPageSize'],
      message: 'must not exceed limits.maxListPageSize',
    });
  }
}

/**
 * auth.apiKeys: one key must not name two principals. Hashes from sha256File and sha256Env are only
 * known once read, so this runs in the resolution step, on every key's lowercased hash; the problem
 * is reported at the setting the later key's hash came from.
 */
export function oneKeyPerPrincipal(
  keys: readonly { readonly sha256: string; readonly source: 'sha256' | 'sha256File' | 'sha256Env' }[],
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const first = new Map<string, number>();
  keys.forEach((key, index) => {
    if (!key.sha256) return; // unreadable: already a problem of its own
    const earlier = first.get(key.sha256);
    if (earlier === undefined) first.set(key.sha256, index);
    else {
      problems.push({
        key: `auth.apiKeys[${index}].${key.source}`,
        message: `the same key as auth.apiKeys[${earlier}]; each key must name one principal`,
      });
    }
  });
  return problems;
}
