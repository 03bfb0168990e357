import { pathToFileURL } from 'node:url';
import { NodePathResolver } from '../../src/fs/resolver.js';
import { canonicalizeRoots } from '../../src/fs/roots.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { ANONYMOUS, type Operation, type Target } from '../../src/policy/types.js';

/** A policy over one real directory, everything readable and writable unless excluded. */
export async function policyOver(
  dir: string,
  exclude: readonly string[] = ['.env', '.mcpd-tmp-*'],
): Promise<PolicyEngine> {
  const { roots, problems } = await canonicalizeRoots([
    {
      name: 'r',
      description: '',
      uri: pathToFileURL(dir).href,
      path: dir,
      read: ['**/*'],
      write: ['**/*'],
      hardLinks: 'refuse',
    },
  ]);
  if (problems.length > 0) throw new Error(`bad test root: ${JSON.stringify(problems)}`);
  return new PolicyEngine({ roots, exclude, resolver: new NodePathResolver() });
}

/** The target of an access the test expects to be allowed. */
export async function allowedTarget(policy: PolicyEngine, op: Operation, relPath: string): Promise<Target> {
  const decision = await policy.decide(ANONYMOUS, op, relPath);
  if (!decision.allow) throw new Error(`${op} ${relPath} denied: ${decision.rule} (${decision.reason})`);
  return decision.target;
}
