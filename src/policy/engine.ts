import { posix } from 'node:path';
import { GlobList } from '../globs.js';
import { GrantTable } from './grants.js';
import { displayFor, isWithin, parseRequestPath, relativeWithin, uriFor } from './paths.js';
import type {
  Decision,
  DenyDecision,
  EntryKind,
  FollowMode,
  Operation,
  PathResolver,
  Principal,
  Root,
  Target,
} from './types.js';
import { ANONYMOUS } from './types.js';

interface RootRules {
  readonly read: GlobList;
  readonly write: GlobList;
}

export interface PolicyOptions {
  readonly roots: readonly Root[];
  /** Global excludes; matched case-insensitively at any depth; always win. */
  readonly exclude: readonly string[];
  readonly resolver: PathResolver;
  /** Who may do what per root; everything the roots allow when absent. */
  readonly grants?: GrantTable;
}

export interface DecideOptions {
  /** Root name or URI that relative paths are resolved against (default: the first root). */
  readonly root?: string;
}

/**
 * Deny by default. A request is allowed only when its path parses, lies inside a root both
 * lexically and canonically (after every symlink is resolved), matches no exclude (checked on the
 * requested and the canonical path and on every ancestor of both), and matches a rule for the
 * operation. The answer is always a Decision value.
 */
export class PolicyEngine {
  readonly roots: readonly Root[];
  private readonly exclude: GlobList;
  private readonly rules: ReadonlyMap<string, RootRules>;
  private readonly resolver: PathResolver;
  readonly grants: GrantTable;

  constructor(options: PolicyOptions) {
    this.roots = options.roots;
    this.grants =
      options.grants ??
      new GrantTable([
        { principals: [ANONYMOUS.id], scopes: [], roots: ['*'], databases: ['*'], access: ['read', 'write'] },
      ]);
    this.exclude = new GlobList(options.exclude, { caseInsensitive: true });
    this.resolver = options.resolver;
    this.rules = new Map(
      options.roots.map((root) => [root.name, { read: new GlobList(root.read), write: new GlobList(root.write) }]),
    );
  }

  get excludePatterns(): readonly string[] {
    return this.exclude.patterns;
  }

  async decide(principal: Principal, op: Operation, input: string, options: DecideOptions = {}): Promise<Decision> {
    // A relative path without a root name goes to the first root this principal may read.
    const defaultRoot = this.roots.find((root) => this.grants.permits(principal, root.name, 'read')) ?? this.roots[0];
    const parsed = parseRequestPath(input, this.roots, options.root, defaultRoot);
    if (!parsed.ok) {
      return deny(op, parsed.root, parsed.relPath, parsed.rule, parsed.reason);
    }
    const { root, relPath: lexicalRel } = parsed;

    // The principal's grants first: they only narrow, and need nothing from the file system.
    if (!this.grants.permits(principal, root.name, op)) {
      const access = op === 'write' ? 'write' : 'read';
      const refusal = deny(
        op,
        root,
        lexicalRel,
        'grant:none',
        `principal "${principal.id}" has no ${access} grant on this root`,
      );
      // A root this principal may not even read is answered as if it did not exist: named, as an
      // unknown root; by path, as a path outside every root.
      if (this.grants.permits(principal, root.name, 'read')) return refusal;
      return { ...refusal, uri: null, display: null, hidden: parsed.addressed };
    }

    // Excludes are judged on the name the client asked for, before anything is resolved, so an
    // excluded name is refused even when it is a link to something harmless.
    const lexicalExclude = this.exclude.matchSelfOrAncestor(lexicalRel);
    if (lexicalExclude) return deny(op, root, lexicalRel, `exclude:${lexicalExclude}`, 'matches an exclude pattern');

    // The root itself is always taken as the directory it resolves to, even when configured as a link.
    const mode: FollowMode = op === 'write' && lexicalRel !== '' ? 'nofollow-last' : 'follow';
    const lexicalAbs = lexicalRel === '' ? root.path : `${root.path}/${lexicalRel}`;
    const resolved = await this.resolver.resolve(lexicalAbs, mode);
    if (!resolved.ok) {
      const rule =
        resolved.reason === 'not-a-directory' ? 'not-found:not-a-directory' : `containment:${resolved.reason}`;
      return deny(op, root, lexicalRel, rule, describeResolution(resolved.reason));
    }
    if (!isWithin(root.canonicalPath, resolved.canonical)) {
      return deny(op, root, lexicalRel, 'containment:symlink', 'resolves outside the root through a symbolic link');
    }
    const relPath = relativeWithin(root.canonicalPath, resolved.canonical);
    const target: Target = {
      root,
      relPath,
      absPath: resolved.canonical,
      uri: uriFor(root, relPath),
      display: displayFor(root, relPath),
      kind: resolved.kind,
    };
    return this.judge(op, target, lexicalRel);
  }

  /**
   * The rule step alone, for an entry whose canonical location is already known (a directory
   * walk reads canonical directories, so its plain entries need no resolution).
   */
  judge(op: Operation, target: Target, requestedRel: string = target.relPath): Decision {
    const { root, relPath } = target;
    const excluded = this.exclude.matchSelfOrAncestor(relPath);
    if (excluded) return deny(op, root, requestedRel, `exclude:${excluded}`, 'matches an exclude pattern');
    const rules = this.rulesFor(root);

    if (op === 'write') {
      if (relPath === '') return deny(op, root, requestedRel, 'write:root-itself', 'the root itself cannot be written');
      if (rules.write.isEmpty) return deny(op, root, requestedRel, 'read-only-root', 'the root is read-only');
      const pattern = rules.write.match(relPath);
      if (!pattern) return deny(op, root, requestedRel, 'default-deny:write', 'no write rule matches');
      return allow(op, target, `write:${pattern}`, 'matches a write rule');
    }

    // read and list: a directory is visible when it is not excluded; a file when a read rule matches.
    if (relPath === '' || target.kind === 'directory') {
      return allow(op, target, 'list:contained', 'directory inside the root');
    }
    const pattern = rules.read.match(relPath);
    if (!pattern) return deny(op, root, requestedRel, 'default-deny:read', 'no read rule matches');
    return allow(op, target, `read:${pattern}`, 'matches a read rule');
  }

  /** Whether an entry under a canonical directory may be shown in listings, trees and search. */
  isVisible(root: Root, relPath: string, kind: EntryKind): boolean {
    if (this.exclude.matchSelfOrAncestor(relPath)) return false;
    if (kind === 'directory') return true;
    return this.rulesFor(root).read.match(relPath) !== undefined;
  }

  /**
   * isVisible for an entry of a directory that is itself visible (what a directory read judges):
   * its ancestors are known not to be excluded, so only the entry's own path is tested.
   */
  isVisibleIn(root: Root, relPath: string, kind: EntryKind): boolean {
    if (this.exclude.match(relPath)) return false;
    if (kind === 'directory') return true;
    return this.rulesFor(root).read.match(relPath) !== undefined;
  }

  /** Whether a directory's subtree is hidden entirely (so walks need not descend). */
  isExcluded(relPath: string): boolean {
    return this.exclude.matchSelfOrAncestor(relPath) !== undefined;
  }

  /**
   * A Target for an entry found by walking a canonical directory (no symlink on the way). Its URI
   * and display name are made when first asked for: a walk makes a target for every directory it
   * enters and shows few of them.
   */
  targetFor(root: Root, relPath: string, kind: EntryKind): Target {
    return new FoundTarget(root, relPath, kind);
  }

  rootByName(name: string): Root | undefined {
    return this.roots.find((root) => root.name === name);
  }

  private rulesFor(root: Root): RootRules {
    const rules = this.rules.get(root.name);
    if (!rules) throw new Error(`policy has no rules for root ${root.name}`);
    return rules;
  }
}

function allow(op: Operation, target: Target, rule: string, reason: string): Decision {
  return { allow: true, op, root: target.root.name, rule, reason, target };
}

function deny(op: Operation, root: Root | null, relPath: string | null, rule: string, reason: string): DenyDecision {
  return {
    allow: false,
    op,
    root: root?.name ?? null,
    path: root ? relPath : null,
    uri: root && relPath !== null ? uriFor(root, relPath) : null,
    display: root && relPath !== null ? displayFor(root, relPath) : null,
    rule,
    reason,
  };
}

function describeResolution(reason: 'loop' | 'dangling-symlink' | 'not-a-directory' | 'name-too-long' | 'io'): string {
  switch (reason) {
    case 'loop':
      return 'symbolic link loop';
    case 'dangling-symlink':
      return 'symbolic link to nothing';
    case 'not-a-directory':
      return 'a path component is not a directory';
    case 'name-too-long':
      return 'path too long';
    case 'io':
      return 'the path could not be resolved';
  }
}

class FoundTarget implements Target {
  readonly absPath: string;
  private madeUri: string | undefined;

  constructor(
    readonly root: Root,
    readonly relPath: string,
    readonly kind: EntryKind,
  ) {
    this.absPath = relPath === '' ? root.canonicalPath : posix.join(root.canonicalPath, relPath);
  }

  get uri(): string {
    this.madeUri ??= uriFor(this.root, this.relPath);
    return this.madeUri;
  }

  get display(): string {
    return displayFor(this.root, this.relPath);
  }
}
