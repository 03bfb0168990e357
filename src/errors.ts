/**
 * The one catalogue of mcpd's domain errors. Every error a client can see is one of these codes;
 * each carries its wire mapping (JSON-RPC code for protocol errors, HTTP status for the edge) so
 * the mapping lives here and nowhere else. Messages are written for the client: they name a path
 * as `Root name:relative/path` (Target.display), never by a host path.
 */

export const ERROR_CATALOGUE = {
  NOT_FOUND_OR_DENIED: {
    jsonRpc: -32602,
    http: 404,
    // -32602 with `data.uri` is resource-not-found on every revision (2026-07-28 requires it).
    when: 'missing, excluded, unreadable, outside every root, or refused by the grants: one answer, so existence never leaks',
  },
  WRITE_DENIED: {
    jsonRpc: -32003,
    http: 403,
    when: 'a write the policy refuses (read-only root, no write rule, excluded name, no write grant) or the file system refuses (permissions, read-only mount)',
  },
  INVALID_PATH: {
    jsonRpc: -32602,
    http: 400,
    when: 'a path the server will not consider: a NUL byte, an empty segment, a backslash, too long, a bad URI',
  },
  INVALID_ARGUMENT: {
    jsonRpc: -32602,
    http: 400,
    when: 'a bad argument, cursor, glob or regular expression, or a root name that is unknown (or hidden from the caller)',
  },
  TOO_LARGE: {
    jsonRpc: -32004,
    http: 413,
    when: 'above a configured bound (read, write, batch, result, directory size); the message says which and what to do',
  },
  CONFLICT: {
    jsonRpc: -32005,
    http: 409,
    when: 'expectedEtag does not match, or the file changed while it was being read',
  },
  ALREADY_EXISTS: { jsonRpc: -32006, http: 409, when: 'createOnly, or a move onto an existing destination' },
  NOT_A_FILE: {
    jsonRpc: -32007,
    http: 400,
    when: 'a directory, a binary file for edit_file, or a symlink for a write',
  },
  NOT_A_DIRECTORY: { jsonRpc: -32008, http: 400, when: 'a listing of something that is not a directory' },
  DIRECTORY_NOT_EMPTY: { jsonRpc: -32009, http: 409, when: 'delete_file on a directory with contents' },
  EDIT_MISMATCH: {
    jsonRpc: -32010,
    http: 422,
    when: 'edit_file: an oldText that does not occur, or occurs more often than allowed',
  },
  UNSUPPORTED: {
    jsonRpc: -32011,
    http: 400,
    when: 'a move across file systems, or a write on a platform that cannot anchor it to a directory descriptor',
  },
  NO_SPACE: { jsonRpc: -32012, http: 507, when: 'the file system is full or over quota: nothing was written' },
  CANCELLED: { jsonRpc: -32800, http: 499, when: 'the client cancelled, closed its stream or stopped reading' },
  TIMEOUT: { jsonRpc: -32001, http: 504, when: 'a tool ran past its deadline and was stopped' },
  UNAVAILABLE: {
    jsonRpc: -32000,
    http: 503,
    when: 'the server cannot take or finish this now (shutting down, the audit log cannot be written); another replica can',
  },
  INTERNAL: {
    jsonRpc: -32603,
    http: 500,
    when: 'an unexpected failure: the message carries the request id, the log has the details',
  },
} as const satisfies Record<string, { jsonRpc: number; http: number; when: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class McpdError extends Error {
  override readonly name = 'McpdError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Client-safe structured details (never host paths). */
    readonly details?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }

  get jsonRpcCode(): number {
    return ERROR_CATALOGUE[this.code].jsonRpc;
  }

  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }
}

/** The message every denied or missing read gets, whatever the cause. */
export const NOT_FOUND_OR_DENIED_MESSAGE = 'not found or not permitted';

export function notFoundOrDenied(displayPath: string | null): McpdError {
  return new McpdError(
    'NOT_FOUND_OR_DENIED',
    displayPath ? `${displayPath}: ${NOT_FOUND_OR_DENIED_MESSAGE}` : NOT_FOUND_OR_DENIED_MESSAGE,
  );
}

export function isMcpdError(error: unknown): error is McpdError {
  return error instanceof McpdError;
}

/** An abort (cancellation or timeout) surfaces from Node's APIs as an AbortError. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: string }).code === 'ABORT_ERR');
}
