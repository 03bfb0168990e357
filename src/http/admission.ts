import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { localhostAllowedHostnames, validateHostHeader, validateOriginHeader } from '@modelcontextprotocol/server';
import proxyAddr from 'proxy-addr';
import { challengeHeader } from '../auth/index.js';
import type { Authenticator, AuthOutcome } from '../auth/types.js';
import type { CallQuota, ConcurrencyLimiter } from '../cluster/concurrency.js';
import { InMemoryRateLimiter, type RateLimiter } from '../cluster/rateLimiter.js';
import type { Config } from '../config/schema.js';
import { jsonRpcError, McpdError } from '../errors.js';
import { clientLabel } from '../mcp/envelope.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics, RejectionReason } from '../ops/metrics.js';
import type { Principal } from '../policy/types.js';
import { pause } from '../slices.js';
import { perConfig } from './perConfig.js';
import { sendError, sendJson } from './respond.js';

/** Why a call is refused when the limits it needs live in a store that cannot be reached (and the config says refuse). */
const SHARED_STATE_DOWN = 'the shared limits cannot be checked (Redis unreachable); retry later';

/** The header a request id travels in: from a trusted proxy, and back to the client. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Refusal records written between two looks at the loop's shared slice. */
const REFUSALS_PER_LOOK = 16;

/** A request id we accept from a client or proxy; anything else is replaced, never echoed. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/**
 * Query parameters that would carry a credential in a URL, where it ends up in logs; compared
 * without case, "-" or "_", so `Access-Token` and `API_KEY` count too.
 */
const CREDENTIAL_PARAMETERS = new Set([
  'accesstoken',
  'token',
  'apikey',
  'key',
  'auth',
  'authorization',
  'bearer',
  'jwt',
  'idtoken',
  'refreshtoken',
  'sessiontoken',
  'password',
  'passwd',
  'secret',
  'clientsecret',
  'xapikey',
]);

function hasCredentialParameter(url: URL): boolean {
  for (const name of url.searchParams.keys()) {
    if (CREDENTIAL_PARAMETERS.has(name.toLowerCase().replace(/[-_]/g, ''))) return true;
  }
  return false;
}

/** Which peers are proxies whose X-Forwarded-For and X-Request-Id are believed. */
export const proxyTrust = perConfig((config) => proxyAddr.compile([...config.server.trustedProxies]));

/** What an edge refusal names as requested when it is about the endpoint, not a call. */
const MCP_ENDPOINT = '/mcp';

/** A request turned away before it reached MCP, for the audit log. */
export interface EdgeRefusal {
  readonly requestId: string;
  readonly principal: string;
  /** The client's User-Agent, bounded and sanitised (the only name a refused client has). */
  readonly userAgent: string | null;
  /** `authenticate` for who-is-asking refusals, `limit` for a call over a limit. */
  readonly op: 'authenticate' | 'limit';
  readonly rule: string;
  readonly reason: string;
  /** What was refused: the endpoint, or the method (and tool) of the call. */
  readonly requested: string;
  readonly status: number;
}

/** The User-Agent as audit records and log lines keep it. */
export function userAgentOf(req: IncomingMessage): string | null {
  return clientLabel(req.headers['user-agent']);
}

/**
 * The request id of a request: a trusted proxy's when well-formed (nginx stamps one), else a new
 * one; echoed back. A client's own X-Request-Id is never believed: it would let a caller choose
 * the id its audit lines are filed under.
 */
export function assignRequestId(req: IncomingMessage, res: ServerResponse, config: Config): string {
  const supplied = req.headers[REQUEST_ID_HEADER];
  const fromProxy = proxyTrust(config)(req.socket.remoteAddress ?? '', 0);
  const requestId =
    fromProxy && typeof supplied === 'string' && REQUEST_ID_PATTERN.test(supplied) ? supplied : randomUUID();
  res.setHeader(REQUEST_ID_HEADER, requestId);
  return requestId;
}

export interface AdmissionDeps {
  readonly bindHost: string;
  readonly rateLimiter: RateLimiter;
  /** Calls in progress, per process and per principal (across replicas when shared). */
  readonly calls: CallQuota;
  /** Open subscription streams, per process and per principal. */
  readonly streams: ConcurrencyLimiter;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly onRefusal: (refusal: EdgeRefusal) => void;
  readonly now?: () => number;
}

export interface Admitted {
  readonly requestId: string;
  readonly principal: Principal;
  readonly auth: Extract<AuthOutcome, { ok: true }>;
}

/** What one message asks of the limits, read from its parsed body (never from a header). */
export interface CallPlan {
  /** The JSON-RPC requests it carries, each a call that takes a token and a slot (labels for the audit). */
  readonly calls: readonly string[];
  /** A subscriptions/listen stream: held open for hours, counted by the stream caps instead of the slots. */
  readonly listen: boolean;
}

/**
 * Whether a request to /mcp gets in, step by step, each refusal answered, counted and (when it
 * is about who is asking) audited: Host and Origin, credentials in the URL, the body size, the
 * bearer credential, the principal's rate, then its share of the concurrency.
 */
export class Admission {
  /** DNS rebinding and cross-site protection, built once per config. */
  private readonly guards = perConfig((config) => {
    const loopback = localhostAllowedHostnames();
    // The name in the public URL is, by definition, one clients use.
    const publicHost = new URL(config.server.publicUrl).hostname;
    const hosts = [...loopback, this.deps.bindHost, publicHost, ...config.server.allowedHosts];
    const origins = [...loopback, ...config.server.allowedOrigins];
    return {
      host: remembered((host: string | undefined) => validateHostHeader(host, hosts)),
      origin: remembered((origin: string | undefined) => validateOriginHeader(origin, origins)),
    };
  });

  /** Addresses failing authentication, throttled before their next credential is judged. */
  private readonly floods: AuthFloods;

  constructor(private readonly deps: AdmissionDeps) {
    this.floods = new AuthFloods(deps.now ?? (() => Date.now()));
  }

  async admit(
    req: IncomingMessage,
    res: ServerResponse,
    /** The parsed URL, when it is more than the bare endpoint path (which has no query to check). */
    url: URL | undefined,
    requestId: string,
    config: Config,
    authenticator: Authenticator,
    /** What the request is for (`/mcp`, `/metrics`): what a refusal names as requested. */
    endpoint: string = MCP_ENDPOINT,
  ): Promise<Admitted | undefined> {
    const { metrics } = this.deps;
    const guards = this.guards(config);
    const userAgent = userAgentOf(req);
    const refusal = (rule: string, reason: string, status: number): EdgeRefusal => ({
      requestId,
      principal: 'unauthenticated',
      userAgent,
      op: 'authenticate',
      requested: endpoint,
      rule,
      reason,
      status,
    });
    // DNS rebinding: a browser page must not reach a local server through a name it controls.
    for (const [reason, check] of [
      ['host', guards.host],
      ['origin', guards.origin],
    ] as const) {
      const verdict = check(reason === 'host' ? req.headers.host : req.headers.origin);
      if (!verdict.ok) {
        this.reject(reason);
        sendError(res, new McpdError('FORBIDDEN_ORIGIN', verdict.message));
        return undefined;
      }
    }

    // A credential in a URL ends up in every log on its way: refuse it outright (RFC 6750 5.3).
    if (url && hasCredentialParameter(url)) {
      const description = 'credentials must not be sent in the query string; use the Authorization header';
      this.reject('token_in_query');
      this.refuse(
        res,
        refusal('auth:token-in-query', description, 400),
        { error: 'invalid_request', error_description: description },
        {
          'www-authenticate': challengeHeader(config.auth, config.server.publicUrl, {
            code: 'invalid_request',
            description,
          }),
        },
      );
      return undefined;
    }

    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > config.server.maxBodyBytes) {
      this.reject('body_too_large');
      sendError(
        res,
        new McpdError(
          'TOO_LARGE',
          `request body of ${declared} bytes exceeds the ${config.server.maxBodyBytes}-byte limit`,
        ),
        { connection: 'close' },
      );
      req.resume();
      return undefined;
    }

    // An address that keeps failing authentication is turned away before any credential is judged
    // again, and audited once per quiet period instead of once per request.
    const address = proxyAddr(req, proxyTrust(config));
    const flooding = this.floods.refusing(address);
    if (flooding) {
      this.reject('auth_flood');
      sendJson(
        res,
        429,
        { error: 'too_many_requests', error_description: 'too many failed authentications' },
        {
          'retry-after': String(flooding),
        },
      );
      return undefined;
    }

    const auth = await authenticator.authenticate(req.headers.authorization);
    if (!auth.ok) {
      metrics.authFailures.inc({ reason: auth.rule });
      const quietFor = await this.floods.failed(address, config.limits.authFailures);
      if (quietFor !== undefined) {
        this.reject('auth_flood');
        this.refuse(
          res,
          refusal(
            'auth:flood',
            `authentication failed too often from this address; refused without auditing for ${quietFor} s`,
            429,
          ),
          jsonRpcError(new McpdError('RATE_LIMITED', 'too many failed authentications from this address; retry later')),
          { 'retry-after': String(quietFor) },
        );
        return undefined;
      }
      // 503: the keys cannot be fetched, so no credential can be judged; the client retries, not re-authenticates.
      const unavailable = auth.status === 503;
      this.refuse(
        res,
        refusal(auth.rule, auth.description, auth.status),
        {
          error: unavailable ? 'temporarily_unavailable' : (auth.code ?? 'unauthorized'),
          error_description: auth.description,
        },
        unavailable
          ? { 'retry-after': '5' }
          : {
              'www-authenticate': challengeHeader(config.auth, config.server.publicUrl, {
                ...(auth.code ? { code: auth.code } : {}),
                description: auth.description,
              }),
            },
      );
      return undefined;
    }
    return { requestId, principal: auth.principal, auth };
  }

  /**
   * The principal's limits, counted per JSON-RPC call: a batch of N calls takes N rate tokens and N
   * concurrency slots, all or none. Returns the release of what was taken, or undefined when the
   * message was refused (answered 429, counted, and audited once per refused call).
   */
  async limit(
    res: ServerResponse,
    admitted: Admitted,
    plan: CallPlan,
    config: Config,
    userAgent: string | null,
  ): Promise<(() => void) | undefined> {
    const { principal, requestId } = admitted;
    const limits = config.limits;
    const count = Math.max(1, plan.calls.length);
    const refuse = async (reason: RejectionReason, rule: string, message: string, retryAfterSec: number) => {
      const calls = plan.calls.length > 0 ? plan.calls : ['(notification)'];
      for (const [index, call] of calls.entries()) {
        // A refused batch is up to a hundred audit records, and refused batches come in bursts.
        if (index % REFUSALS_PER_LOOK === REFUSALS_PER_LOOK - 1) {
          const turn = pause();
          if (turn) await turn;
        }
        this.deps.onRefusal({
          requestId,
          principal: principal.id,
          userAgent,
          op: 'limit',
          rule,
          reason: message,
          requested: call,
          status: 429,
        });
      }
      this.tooMany(res, requestId, principal, reason, message, retryAfterSec);
      return undefined;
    };
    const rateRefused = (retryAfterMs: number) =>
      refuse('rate_limited', 'limit:rate', 'request rate limit reached', Math.ceil(retryAfterMs / 1000));
    if (plan.listen) {
      const rate = await this.deps.rateLimiter.take(
        principal.id,
        limits.rateLimit.perSecond,
        limits.rateLimit.burst,
        count,
      );
      if (!rate.ok) {
        if (rate.unavailable) return refuse('shared_state', 'limit:unavailable', SHARED_STATE_DOWN, 1);
        return rateRefused(rate.retryAfterMs);
      }
      const stream = this.deps.streams.acquire(
        principal.id,
        limits.maxSubscriptionStreams,
        limits.maxSubscriptionStreamsPerPrincipal,
      );
      if (!stream) return refuse('streams', 'limit:streams', 'too many open subscription streams', 5);
      return () => stream.release();
    }
    // The rate tokens and the slots in one step: one round trip when they are shared through Redis.
    const admission = await this.deps.calls.admit(principal.id, {
      maxTotal: limits.maxConcurrentRequests,
      maxPerKey: limits.maxConcurrentPerPrincipal,
      count,
      perSecond: limits.rateLimit.perSecond,
      burst: limits.rateLimit.burst,
    });
    if (admission.ok) return () => admission.slots.release();
    if (admission.reason === 'rate') return rateRefused(admission.retryAfterMs);
    if (admission.reason === 'unavailable') return refuse('shared_state', 'limit:unavailable', SHARED_STATE_DOWN, 1);
    return refuse('concurrency', 'limit:concurrency', 'too many requests in progress', 1);
  }

  /** The 503 of a draining server: counted, audited, and telling the client to go elsewhere. */
  refuseDraining(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const reason = 'server is shutting down; retry on another instance';
    this.reject('draining');
    this.refuse(
      res,
      {
        requestId,
        principal: 'unauthenticated',
        userAgent: userAgentOf(req),
        op: 'authenticate',
        requested: MCP_ENDPOINT,
        rule: 'lifecycle:draining',
        reason,
        status: 503,
      },
      jsonRpcError(new McpdError('UNAVAILABLE', reason)),
      { connection: 'close', 'retry-after': '1' },
    );
  }

  private reject(reason: RejectionReason): void {
    this.deps.metrics.rejected.inc({ reason });
  }

  private refuse(res: ServerResponse, refusal: EdgeRefusal, body: unknown, headers: Record<string, string>): void {
    this.deps.onRefusal(refusal);
    sendJson(res, refusal.status, body, headers);
  }

  private tooMany(
    res: ServerResponse,
    requestId: string,
    principal: Principal,
    reason: RejectionReason,
    message: string,
    retryAfterSec: number,
  ): void {
    this.reject(reason);
    this.deps.logger.info({ requestId, principal: principal.id, reason }, message);
    const code = reason === 'rate_limited' ? 'RATE_LIMITED' : reason === 'shared_state' ? 'UNAVAILABLE' : 'BUSY';
    sendError(res, new McpdError(code, reason === 'shared_state' ? message : `${message}; retry later`), {
      'retry-after': String(Math.max(1, retryAfterSec)),
    });
  }
}

/**
 * Failed authentications per client address: a token bucket of failures; once it is empty, the
 * address is refused (429) before any credential is judged, for as long as the bucket needs to
 * hold a token again, and only the first of those refusals is audited. An unauthenticated flood
 * thus costs neither key checks nor an audit line per request.
 */
class AuthFloods {
  private readonly failures = new InMemoryRateLimiter();
  private readonly quiet = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  /** Seconds to wait when `address` is being refused, else undefined. */
  refusing(address: string): number | undefined {
    const until = this.quiet.get(address);
    if (until === undefined) return undefined;
    const left = until - this.now();
    if (left <= 0) {
      this.quiet.delete(address);
      return undefined;
    }
    return Math.ceil(left / 1000);
  }

  /** Counts a failure; when it empties the bucket, starts a quiet period and returns its seconds. */
  async failed(address: string, limit: { perSecond: number; burst: number }): Promise<number | undefined> {
    const taken = await this.failures.take(address, limit.perSecond, limit.burst);
    if (taken.ok) return undefined;
    const seconds = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
    if (this.quiet.size >= MAX_QUIET_ADDRESSES) this.sweep();
    this.quiet.set(address, this.now() + seconds * 1000);
    return seconds;
  }

  private sweep(): void {
    const now = this.now();
    for (const [address, until] of this.quiet) if (until <= now) this.quiet.delete(address);
    // Still full: the oldest go, so memory stays bounded whatever the number of addresses.
    for (const address of this.quiet.keys()) {
      if (this.quiet.size < MAX_QUIET_ADDRESSES) break;
      this.quiet.delete(address);
    }
  }
}

/** Distinct Host or Origin values whose verdict is remembered, per config; beyond it, the memory starts over. */
const MAX_REMEMBERED_VERDICTS = 256;

/**
 * A check of one header value, remembered: clients send the same Host and Origin on every
 * request, and each check parses a URL. Bounded, so a client inventing values costs memory only
 * up to the bound.
 */
function remembered<T>(check: (value: string | undefined) => T): (value: string | undefined) => T {
  const verdicts = new Map<string | undefined, T>();
  return (value) => {
    let verdict = verdicts.get(value);
    if (verdict === undefined) {
      verdict = check(value);
      if (verdicts.size >= MAX_REMEMBERED_VERDICTS) verdicts.clear();
      verdicts.set(value, verdict);
    }
    return verdict;
  };
}

/** Addresses in a quiet period at once; beyond it, the oldest are forgotten. */
const MAX_QUIET_ADDRESSES = 10_000;
