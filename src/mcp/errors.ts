import { type CallToolResult, ProtocolError } from '@modelcontextprotocol/server';
import { isAbortError, isMcpdError, McpdError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import type { Outcome } from './context.js';

/** Reports an unexpected error with the request it broke; the client only sees a reference. */
export type InternalErrorReporter = (error: unknown, requestId: string) => void;

/** Reports internal errors to the server log, with the request they broke. */
export function logInternalErrors(logger: Logger): InternalErrorReporter {
  return (error, requestId) => logger.error({ err: error, requestId }, 'internal error while serving a request');
}

/** The `_meta` key that carries mcpd's stable error code on a failed tool result. */
export const ERROR_META_KEY = 'dev.mcpd/error';

function domainError(error: unknown, requestId: string, report: InternalErrorReporter): McpdError {
  if (isMcpdError(error)) return error;
  if (isAbortError(error)) return new McpdError('CANCELLED', 'the request was cancelled');
  report(error, requestId);
  return new McpdError('INTERNAL', `internal error (request ${requestId}); the server log has the details`);
}

/** A tool failure as the protocol wants it: a result with isError, so the model can read why. */
export function toToolError(error: unknown, requestId: string, report: InternalErrorReporter): CallToolResult {
  const failure = domainError(error, requestId, report);
  return {
    isError: true,
    content: [{ type: 'text', text: `${failure.code}: ${failure.message}` }],
    _meta: { [ERROR_META_KEY]: { code: failure.code, ...(failure.details ?? {}) } },
  };
}

/**
 * Notes a failure on the request's outcome, for the edge's metrics, log line and span: the
 * conventions' error.type (`tool_error` for an isError result, else the JSON-RPC code) and the
 * catalogue code the failure carries.
 */
export function noteFailure(outcome: Outcome, failure: CallToolResult | ProtocolError): void {
  const tool = !(failure instanceof ProtocolError);
  outcome.errorType = tool ? 'tool_error' : String(failure.code);
  const code = ((tool ? failure._meta?.[ERROR_META_KEY] : failure.data) as { code?: unknown } | undefined)?.code;
  outcome.errorCode = typeof code === 'string' ? code : undefined;
}

/**
 * A failure of a non-tool request (resources/read, resources/list): a JSON-RPC error. A resource
 * that is missing or refused is the spec's resource-not-found, which echoes the URI as requested.
 */
export function toProtocolError(
  error: unknown,
  requestId: string,
  report: InternalErrorReporter,
  resourceUri?: string,
): ProtocolError {
  const failure = domainError(error, requestId, report);
  // Resource-not-found on every revision: -32602 with the URI as requested in data.uri.
  const data = {
    code: failure.code,
    ...(failure.code === 'NOT_FOUND_OR_DENIED' && resourceUri !== undefined ? { uri: resourceUri } : {}),
    ...(failure.details ?? {}),
  };
  return new ProtocolError(failure.jsonRpcCode, failure.message, data);
}
