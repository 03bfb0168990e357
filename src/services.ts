import { AccessGate } from './access/gate.js';
import type { AuditLog } from './audit/log.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { NodePathResolver } from './fs/resolver.js';
import { canonicalizeRoots } from './fs/roots.js';
import type { McpServices } from './mcp/scope.js';
import { PolicyEngine } from './policy/engine.js';

/**
 * Builds what requests run under from a validated config: canonical roots, the policy engine and
 * the audited gate. Roots that do not exist are configuration errors, named by their key.
 */
export async function buildServices(config: Config, audit: AuditLog): Promise<McpServices> {
  const { roots, problems } = await canonicalizeRoots(config.roots);
  if (problems.length > 0) {
    throw new ConfigError(
      problems.map((problem) => ({
        key: `roots[${problem.index}].uri`,
        message: `${problem.message} (got ${JSON.stringify(config.roots[problem.index]?.uri)})`,
      })),
      config.source,
    );
  }
  const policy = new PolicyEngine({ roots, exclude: config.exclude, resolver: new NodePathResolver() });
  return { config, gate: new AccessGate(policy, audit) };
}
