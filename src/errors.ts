/**
 * The one catalogue of mcpd's domain errors. Every error a client can see is one of these codes;
 * each carries its wire mapping (JSON-RPC code for protocol errors, HTTP status for the edge) so
 * the mapping lives here and nowhere else. Messages are written for the client: they name a path
 * as `Root name:relative/path` (Target.display), never by a host path.
 */

export const ERROR_CATALOGUE = {
  /**
   * Missing, excluded, unreadable or outside every root: one answer so existence never leaks.
   * -32602 with `data.uri` is resource-not-found on every revision (2026-07-28 requires it).
   */
  NOT_FOUND_OR_DENIED: { jsonRpc: -32602, http: 404 },
  /** A write the policy refuses (read-only root, no matching write glob, excluded name). */
  WRITE_DENIED: { jsonRpc: -32003, http: 403 },
  /** A path the server will not even consider (NUL byte, empty segment, backslash, too long). */
  INVALID_PATH: { jsonRpc: -32602, http: 400 },
  INVALID_ARGUMENT: { jsonRpc: -32602, http: 400 },
  /** A result or input above a configured bound; the message says which bound and what to do. */
  TOO_LARGE: { jsonRpc: -32004, http: 413 },
  /** An expected ETag did not match: someone else changed the file. */
  CONFLICT: { jsonRpc: -32005, http: 409 },
  ALREADY_EXISTS: { jsonRpc: -32006, http: 409 },
  NOT_A_FILE: { jsonRpc: -32007, http: 400 },
  NOT_A_DIRECTORY: { jsonRpc: -32008, http: 400 },
  DIRECTORY_NOT_EMPTY: { jsonRpc: -32009, http: 409 },
  /** edit_file: an oldText that does not occur, or occurs more often than allowed. */
  EDIT_MISMATCH: { jsonRpc: -32010, http: 422 },
  UNSUPPORTED: { jsonRpc: -32011, http: 400 },
  /** The file system is full or over quota: nothing was written, the old file is intact. */
  NO_SPACE: { jsonRpc: -32012, http: 507 },
  CANCELLED: { jsonRpc: -32800, http: 499 },
  /** A tool that ran past its time limit and was stopped. */
  TIMEOUT: { jsonRpc: -32001, http: 504 },
  /** The server cannot take or finish this now (shutting down); another replica can. */
  UNAVAILABLE: { jsonRpc: -32000, http: 503 },
  INTERNAL: { jsonRpc: -32603, http: 500 },
} as const;

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
