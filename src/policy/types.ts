import type { RootConfig } from '../config/schema.js';

/** What a caller wants to do with a path. `list` and `read` share visibility rules; `write` covers
 * create, modify, move and delete. */
export type Operation = 'read' | 'list' | 'write';

export const OPERATIONS: readonly Operation[] = ['read', 'list', 'write'];

/** Who is asking. Anonymous until authentication exists; every audit record names it. */
export interface Principal {
  readonly id: string;
  readonly scopes: readonly string[];
  /** The local OS user over stdio: the roots' policies apply to it, grants do not. */
  readonly local?: true;
}

/** The caller over HTTP when authentication is off (loopback only). */
export const ANONYMOUS: Principal = Object.freeze({ id: 'anonymous', scopes: Object.freeze([]) });

/** The caller over stdio: whoever started the process. */
export const LOCAL: Principal = Object.freeze({ id: 'local', scopes: Object.freeze([]), local: true });

export type EntryKind = 'file' | 'directory' | 'symlink' | 'other' | 'missing';

/** A root as the policy sees it: the configured root (whose path may itself be a symlink) plus its canonical form. */
export interface Root extends RootConfig {
  /** realpath of `path`; every containment decision compares against this. */
  readonly canonicalPath: string;
}

/** An allowed target: everything the file layer needs, nothing it must re-derive. */
export interface Target {
  readonly root: Root;
  /** Canonical, POSIX-separated path relative to the root's canonical path ('' is the root). */
  readonly relPath: string;
  /** Canonical absolute host path. Never shown to clients. */
  readonly absPath: string;
  /** What the client sees: the root's URI joined with relPath. */
  readonly uri: string;
  /** How messages name it: the root's name and the root-relative path, never a host path. */
  readonly display: string;
  readonly kind: EntryKind;
}

export interface AllowDecision {
  readonly allow: true;
  readonly op: Operation;
  readonly root: string;
  readonly rule: string;
  readonly reason: string;
  readonly target: Target;
}

export interface DenyDecision {
  readonly allow: false;
  readonly op: Operation;
  /** The root the request was addressed to, when it could be attributed to one. */
  readonly root: string | null;
  /** Root-relative path as requested, when attributable; never a host path. */
  readonly path: string | null;
  /** The URI a client may be shown, when attributable; null for paths outside every root. */
  readonly uri: string | null;
  /** How messages name it (root name and root-relative path); null when `uri` is. */
  readonly display: string | null;
  readonly rule: string;
  readonly reason: string;
  /** Set when the root is one the principal may not see: how the request named it. */
  readonly hidden?: 'path' | 'name';
}

/** A policy decision is a value, never an exception: denials feed the audit log as they are. */
export type Decision = AllowDecision | DenyDecision;

/** How the final path component is treated. Reads follow a symlink (and check where it lands);
 * writes act on the entry itself, so replacing or deleting a link never touches its target. */
export type FollowMode = 'follow' | 'nofollow-last';

export type Resolution =
  | { readonly ok: true; readonly canonical: string; readonly kind: EntryKind }
  | { readonly ok: false; readonly reason: 'loop' | 'dangling-symlink' | 'not-a-directory' | 'name-too-long' | 'io' };

/**
 * The one capability the policy needs from the file system: canonicalise an absolute,
 * lexically-normal path (realpath of it, or of its nearest existing ancestor). Implemented in `fs/`,
 * so the policy stays pure and `fs/` stays the only code that touches files.
 */
export interface PathResolver {
  resolve(absolutePath: string, mode: FollowMode): Promise<Resolution>;
}
