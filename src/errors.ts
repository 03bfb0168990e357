/**
 * The one catalogue of what a client can be refused, by a tool, a protocol handler or the HTTP
 * edge, over HTTP or stdio. Each code carries its wire mapping (the JSON-RPC error code, and the
 * HTTP status when the refusal is the whole HTTP response; null when it only ever travels inside a
 * 200 response, as a tool's isError result or a handler's JSON-RPC error) and when it applies; `jsonRpcError` below is the only
 * builder of JSON-RPC error objects, for both transports. Messages are written for the client:
 * they name a path as `Root name:relative/path` (Target.display), never by a host path.
 *
 * Authentication refusals are the one exception to JSON-RPC bodies: an OAuth resource server
 * answers 401/403 with `WWW-Authenticate` and an RFC 6750 error object, which clients parse.
 */

export const ERROR_CATALOGUE = {
  NOT_FOUND_OR_DENIED: {
    jsonRpc: -32602,
    http: null,
    // -32602 with `data.uri` is resource-not-found on every revision (2026-07-28 requires it).
    when: 'missing, excluded, unreadable, outside every root, or refused by the grants: one answer, so existence never leaks',
  },
  WRITE_DENIED: {
    jsonRpc: -32003,
    http: null,
    when: 'a write the policy refuses (read-only root, no write rule, excluded name, no write grant) or the file system refuses (permissions, read-only mount)',
  },
  INVALID_PATH: {
    jsonRpc: -32602,
    http: null,
    when: 'a path the server will not consider: a NUL byte, an empty segment, a backslash, too long, a bad URI',
  },
  INVALID_ARGUMENT: {
    jsonRpc: -32602,
    http: null,
    when: 'a bad argument, cursor, glob or regular expression, or a root name that is unknown (or hidden from the caller)',
  },
  TOO_LARGE: {
    jsonRpc: -32004,
    http: 413,
    when: 'above a configured bound (read, write, batch, result, directory size); the message says which and what to do',
  },
  CONFLICT: {
    jsonRpc: -32005,
    http: null,
    when: 'expectedEtag does not match, or the file changed while it was being read',
  },
  ALREADY_EXISTS: { jsonRpc: -32006, http: null, when: 'createOnly, or a move onto an existing destination' },
  NOT_A_FILE: {
    jsonRpc: -32007,
    http: null,
    when: 'a directory, a binary file for edit_file, or a symlink for a write',
  },
  NOT_A_DIRECTORY: { jsonRpc: -32008, http: null, when: 'a listing of something that is not a directory' },
  DIRECTORY_NOT_EMPTY: { jsonRpc: -32009, http: null, when: 'delete_file on a directory with contents' },
  EDIT_MISMATCH: {
    jsonRpc: -32010,
    http: null,
    when: 'edit_file: an oldText that does not occur, or occurs more often than allowed',
  },
  UNSUPPORTED: {
    jsonRpc: -32011,
    http: null,
    when: 'a move across file systems, or a write on a platform that cannot anchor it to a directory descriptor',
  },
  NO_SPACE: { jsonRpc: -32012, http: null, when: 'the file system is full or over quota: nothing was written' },
  QUERY_REFUSED: {
    jsonRpc: -32016,
    http: null,
    when: 'a SQL statement the database policy refuses before it runs: not one read-only SELECT, a table or column that is not visible, a function or construct that is not allowed',
  },
  QUERY_FAILED: {
    jsonRpc: -32017,
    http: null,
    when: 'a SQL statement the database itself refused or could not finish (a syntax error, out of memory)',
  },
  CANCELLED: { jsonRpc: -32800, http: null, when: 'the client cancelled, closed its stream or stopped reading' },
  TIMEOUT: { jsonRpc: -32001, http: null, when: 'a tool ran past its deadline and was stopped' },
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
  // Refusals of a message before it reaches a tool (the edge, or the protocol layer).
  PARSE_ERROR: { jsonRpc: -32700, http: 400, when: 'the body (or a stdio line) is not JSON' },
  INVALID_REQUEST: { jsonRpc: -32600, http: 400, when: 'JSON that is not a JSON-RPC request the server accepts' },
  METHOD_NOT_FOUND: { jsonRpc: -32601, http: 404, when: 'a method the server does not offer' },
  HEADER_MISMATCH: {
    jsonRpc: -32020,
    http: 400,
    when: 'a 2026-07-28 request whose Mcp-Method or Mcp-Name header is missing or disagrees with its body',
  },
  RATE_LIMITED: {
    jsonRpc: -32013,
    http: 429,
    when: "the principal's rate limit, counted per JSON-RPC call; Retry-After says when to try again",
  },
  BUSY: {
    jsonRpc: -32014,
    http: 429,
    when: 'too many calls in progress (per process or per principal) or too many open subscription streams',
  },
  FORBIDDEN_ORIGIN: {
    jsonRpc: -32015,
    http: 403,
    when: 'a Host or Origin header that is not allowed (DNS rebinding and cross-site protection)',
  },
  UNAUTHENTICATED: {
    // Not a JSON-RPC body: an OAuth resource server answers with WWW-Authenticate and an RFC 6750 error.
    jsonRpc: null,
    http: 401,
    when: 'no credential, or one that is not valid; answered with WWW-Authenticate and an OAuth error body',
  },
} as const satisfies Record<string, { jsonRpc: number | null; http: number | null; when: string }>;

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

  /** The JSON-RPC error code; the generic server error (-32000) for the one code that has none (UNAUTHENTICATED). */
  get jsonRpcCode(): number {
    return ERROR_CATALOGUE[this.code].jsonRpc ?? -32000;
  }

  /** The HTTP status when this refusal is the whole response (see the catalogue); null otherwise. */
  get httpStatus(): number | null {
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

/** A JSON-RPC request id, as echoed on its error (null when the request had none, or was unreadable). */
export type JsonRpcId = string | number | null;

/** The JSON-RPC error response for `error`: the one builder, for every transport. */
export function jsonRpcError(error: McpdError, id: JsonRpcId = null) {
  return {
    jsonrpc: '2.0' as const,
    id,
    error: { code: error.jsonRpcCode, message: error.message, data: { code: error.code, ...(error.details ?? {}) } },
  };
}
