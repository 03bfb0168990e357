import { performance } from 'node:perf_hooks';
import type { AuditFields, AuditLog } from '../audit/log.js';
import type { DatabaseAccess, Outcome, Transport } from '../audit/record.js';
import { isAbortError, isMcpdError, McpdError, notFoundOrDenied } from '../errors.js';
import { InFlight } from '../ops/inflight.js';
import { rootLabel } from '../ops/labels.js';
import type { Metrics } from '../ops/metrics.js';
import type { Tracing } from '../ops/tracing.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { AllowDecision, Decision, DenyDecision, Operation, Principal, Target } from '../policy/types.js';

type CallerFields = Pick<
  AuditFields,
  'requestId' | 'principal' | 'client' | 'userAgent' | 'transport' | 'method' | 'tool'
>;

/** How much of a requested path an audit record keeps. */
const MAX_REQUESTED_CHARS = 512;

/** Who is asking, through what, for which method: fixed for one request. */
export interface Caller {
  readonly principal: Principal;
  readonly requestId: string;
  /** The client's name, else its User-Agent (see AuditRecord.client). */
  readonly client: string | null;
  readonly userAgent: string | null;
  readonly transport: Transport;
  readonly method: string;
  readonly tool: string | null;
  /** Aborted when the request is cancelled; what it aborts with is the canceller's business. */
  readonly signal?: AbortSignal;
}

export interface PathRequest {
  readonly op: Operation;
  readonly path: string;
  /** Root name or URI for relative paths. */
  readonly root?: string;
}

/** What a run reports back for the audit record. */
export interface Measured<T> {
  readonly value: T;
  readonly bytes?: number | null;
}

/** What the gate reports to besides the audit log: counters and spans (both optional). */
export interface GateObservers {
  readonly metrics?: Metrics;
  readonly tracing?: Tracing;
}

/**
 * Decide, then run, then write exactly one audit record per path, whatever happened: the core
 * of every file operation (AuditedFiles is built on it). A denial never reaches the file layer; it becomes the same
 * client-facing error a missing file gets (reads) or a plain refusal (writes).
 */
export class AccessGate {
  private readonly active = new InFlight<symbol>();

  constructor(
    readonly policy: PolicyEngine,
    private readonly audit: AuditLog,
    private readonly observers: GateObservers = {},
  ) {}

  /** Accesses decided and not yet audited. */
  get inFlight(): number {
    return this.active.size;
  }

  /**
   * Resolves when no access is in progress (or after `timeoutMs`): the audit log must not be
   * closed while a record is still to come.
   */
  async whenIdle(timeoutMs: number): Promise<void> {
    await this.active.whenEmpty(timeoutMs);
  }

  /** Decides `request` and, if allowed, runs `run` on the target. */
  access<T>(caller: Caller, request: PathRequest, run: (target: Target) => Promise<Measured<T>>): Promise<T> {
    return this.accessAll(caller, [request], ([target]) => run(target as Target));
  }

  /**
   * Several paths that must all be allowed (a move: read and write the source, write the
   * destination; an edit: read and write one file). Every decision is audited; one run follows
   * only if all allow.
   */
  accessAll<T>(caller: Caller, requests: readonly PathRequest[], run: (targets: Target[]) => Promise<Measured<T>>) {
    return this.decideThenRun(caller, requests, 'all', run);
  }

  /**
   * Several starting points for one operation (a search across roots). Denied ones are audited and
   * left out; the run sees the allowed targets in request order. Fails only if all are denied.
   */
  accessEach<T>(caller: Caller, requests: readonly PathRequest[], run: (targets: Target[]) => Promise<Measured<T>>) {
    return this.decideThenRun(caller, requests, 'each', run);
  }

  private decideThenRun<T>(
    caller: Caller,
    requests: readonly PathRequest[],
    need: 'all' | 'each',
    run: (targets: Target[]) => Promise<Measured<T>>,
  ): Promise<T> {
    return this.tracked(async () => {
      const started = performance.now();
      const decisions = await Promise.all(requests.map((request) => this.decide(caller, request)));
      const pairs = requests.map((request, index) => [request, decisions[index] as Decision] as const);
      const allowed = pairs.filter((pair): pair is readonly [PathRequest, AllowDecision] => pair[1].allow);
      const denial = decisions.find((decision): decision is DenyDecision => !decision.allow);
      if (denial && (need === 'all' || allowed.length === 0)) {
        // What was allowed did not happen either: it is recorded as failing with the denial.
        const error = denialError(denial);
        for (const [request, decision] of pairs) {
          if (decision.allow) this.record(caller, request, decision, started, 'error', null, error.code);
          else this.record(caller, request, decision, started, 'denied', null);
        }
        throw error;
      }
      if (allowed.length === 0) throw new McpdError('INVALID_ARGUMENT', 'nothing to do');
      // Each: the denied starts are audited and left out.
      for (const [request, decision] of pairs) {
        if (!decision.allow) this.record(caller, request, decision, started, 'denied', null);
      }
      return this.runAllowed(caller, allowed, started, () => run(allowed.map(([, decision]) => decision.target)));
    });
  }

  /** Records a denial found after the fact (an entry a move would carry), as any denial is recorded. */
  recordDenial(caller: Caller, request: PathRequest, decision: DenyDecision, started: number): void {
    this.record(caller, request, decision, started, 'denied', null);
  }

  /**
   * Records a refusal that has no path behind it (a token without the scope a tool needs, a
   * request turned away at the door): it is an access attempt all the same.
   */
  refuse(caller: Caller, refusal: { op: string; rule: string; reason: string; requested: string }): void {
    this.write(caller, {
      ...refusal,
      root: null,
      path: null,
      decision: 'deny',
      bytes: null,
      durationMs: 0,
      outcome: 'denied',
    });
  }

  /**
   * A 2025-era `initialize`: over stateless HTTP it is the only request that names the client, so
   * it is recorded (with the version the client gave) even though it touches no path.
   */
  recordInitialize(
    caller: Caller,
    handshake: { readonly protocolVersion: string | null; readonly clientVersion: string | null; readonly ok: boolean },
  ): void {
    const version = handshake.clientVersion === null ? '' : ` version ${handshake.clientVersion}`;
    this.write(caller, {
      op: 'initialize',
      root: null,
      path: null,
      requested: handshake.protocolVersion ?? '',
      decision: 'allow',
      rule: 'protocol:initialize',
      reason: `client ${JSON.stringify(caller.client ?? 'unnamed')}${version} asked for protocol ${handshake.protocolVersion ?? '(none)'}`,
      bytes: null,
      durationMs: 0,
      outcome: handshake.ok ? 'ok' : 'error',
    });
  }

  /**
   * A subscriptions/listen stream opened: who listens, and to which roots it will hear of (those its
   * grants let it read; the rest are filtered out of the stream).
   */
  recordSubscription(caller: Caller, roots: readonly string[]): void {
    this.write(caller, {
      op: 'subscribe',
      root: null,
      path: null,
      requested: 'subscriptions/listen',
      decision: 'allow',
      rule: roots.length > 0 ? 'grant:read' : 'grant:none',
      reason:
        roots.length > 0
          ? `hears of changes in ${roots.map((root) => JSON.stringify(root)).join(', ')}`
          : 'no read grant on any root: hears of no changes',
      bytes: null,
      durationMs: 0,
      outcome: 'ok',
    });
  }

  /**
   * Runs a database statement's work as an access: refused while the audit log cannot be
   * written, and counted in flight until its record is written (`record` below).
   */
  guarded<T>(work: () => Promise<T>): Promise<T> {
    return this.tracked(work);
  }

  /** Runs a database operation in a child span when tracing (the statement's planning, judging and run). */
  traced<T>(
    name: string,
    attributes: Record<string, string | number>,
    work: (annotate: (attributes: Record<string, string | number>) => void) => Promise<T>,
  ): Promise<T> {
    const { tracing } = this.observers;
    if (!tracing?.enabled) return work(() => {});
    return tracing.inSpan(name, attributes, (span) => work((more) => span.setAttributes(more)));
  }

  /** The one audit record of a database statement (or a describe), allowed or denied. */
  recordDatabase(
    caller: Caller,
    access: {
      readonly op: 'query' | 'describe';
      readonly requested: string;
      readonly decision: 'allow' | 'deny';
      readonly rule: string;
      readonly reason: string;
      readonly outcome: Outcome;
      readonly bytes: number | null;
      readonly started: number;
      readonly error?: string;
      readonly database: DatabaseAccess;
    },
  ): void {
    const { started, requested, ...fields } = access;
    this.write(caller, {
      ...fields,
      root: null,
      path: null,
      requested: requested.length > MAX_REQUESTED_CHARS ? `${requested.slice(0, MAX_REQUESTED_CHARS)}...` : requested,
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
    });
  }

  private async tracked<T>(work: () => Promise<T>): Promise<T> {
    // Never serve what cannot be audited: while the audit log cannot be written, nothing is read or
    // written (the refusal itself cannot be recorded; it is logged and counted by the caller).
    if (!this.audit.healthy) {
      throw new McpdError(
        'UNAVAILABLE',
        'the audit log cannot be written; file and database operations are refused until it recovers (another replica may serve this)',
      );
    }
    const token = Symbol('access');
    this.active.add(token);
    try {
      return await work();
    } finally {
      this.active.delete(token);
    }
  }

  private decide(caller: Caller, request: PathRequest): Promise<Decision> {
    const { tracing } = this.observers;
    const decide = () => this.policy.decide(caller.principal, request.op, request.path, { root: request.root });
    if (!tracing?.enabled) return decide();
    return tracing.inSpan('mcpd.policy.decide', { 'mcpd.operation': request.op }, async (span) => {
      const decision = await decide();
      span.setAttributes({
        'mcpd.decision': decision.allow ? 'allow' : 'deny',
        'mcpd.rule': decision.rule,
        ...(decision.root ? { 'mcpd.root': decision.root } : {}),
      });
      return decision;
    });
  }

  /** The file operation of an allowed access, in a child span when tracing. */
  private perform<T>(decisions: readonly (readonly [PathRequest, AllowDecision])[], run: () => Promise<Measured<T>>) {
    const { tracing } = this.observers;
    const first = decisions[0]?.[1];
    if (!tracing?.enabled || !first) return run();
    return tracing.inSpan(
      `mcpd.fs ${first.op}`,
      { 'mcpd.operation': first.op, 'mcpd.root': first.root, 'mcpd.path': first.target.relPath },
      async (span) => {
        const measured = await run();
        if (measured.bytes !== undefined && measured.bytes !== null) span.setAttribute('mcpd.bytes', measured.bytes);
        return measured;
      },
    );
  }

  private async runAllowed<T>(
    caller: Caller,
    decisions: readonly (readonly [PathRequest, AllowDecision])[],
    started: number,
    run: () => Promise<Measured<T>>,
  ): Promise<T> {
    try {
      const { value, bytes } = await this.perform(decisions, run);
      for (const [request, decision] of decisions) this.record(caller, request, decision, started, 'ok', bytes ?? null);
      return value;
    } catch (error) {
      const stopped = caller.signal?.aborted === true || isAbortError(error);
      const reason = caller.signal?.aborted ? caller.signal.reason : undefined;
      const code = isMcpdError(reason)
        ? reason.code
        : stopped
          ? 'CANCELLED'
          : isMcpdError(error)
            ? error.code
            : 'INTERNAL';
      // A deadline is a failure of the call; a client or a shutdown stopping it is a cancellation.
      const outcome = stopped && code !== 'TIMEOUT' ? 'cancelled' : 'error';
      for (const [request, decision] of decisions) {
        this.record(caller, request, decision, started, outcome, null, code);
      }
      throw error;
    }
  }

  private record(
    caller: Caller,
    request: PathRequest,
    decision: Decision,
    started: number,
    outcome: Outcome,
    bytes: number | null,
    error?: string,
  ): void {
    this.write(caller, {
      root: decision.root,
      path: decision.allow ? decision.target.relPath : decision.path,
      requested:
        request.path.length > MAX_REQUESTED_CHARS ? `${request.path.slice(0, MAX_REQUESTED_CHARS)}...` : request.path,
      op: decision.op,
      decision: decision.allow ? 'allow' : 'deny',
      rule: decision.rule,
      reason: decision.reason,
      bytes,
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      outcome,
      ...(error ? { error } : {}),
    });
  }

  /** One audit line: who asked (from the caller) and what became of it; counted and traced too. */
  private write(caller: Caller, what: Omit<AuditFields, keyof CallerFields | 'traceId'>): void {
    const { metrics, tracing } = this.observers;
    const traceId = tracing?.activeTraceId() ?? null;
    this.audit.write({
      requestId: caller.requestId,
      principal: caller.principal.id,
      client: caller.client,
      userAgent: caller.userAgent,
      transport: caller.transport,
      method: caller.method,
      tool: caller.tool,
      ...what,
      ...(traceId ? { traceId } : {}),
    });
    if (metrics) {
      metrics.policyDecisions.inc({ root: rootLabel(what.root), operation: what.op, decision: what.decision });
      if (what.outcome === 'ok' && what.bytes) {
        metrics.fileBytes.inc({ direction: what.op === 'write' ? 'write' : 'read' }, what.bytes);
      }
    }
  }
}

/** The client-facing error for a denial: no detail that would reveal whether the path exists. */
export function denialError(decision: DenyDecision): McpdError {
  if (decision.rule.startsWith('syntax:')) return new McpdError('INVALID_PATH', `invalid path: ${decision.reason}`);
  if (decision.rule === 'unknown-root' || decision.hidden === 'name') {
    return new McpdError('INVALID_ARGUMENT', 'no root has that name or URI');
  }
  if (decision.hidden === 'path') return notFoundOrDenied(null);
  const shown = decision.display;
  if (decision.op === 'write') {
    const ruleBased = ['read-only-root', 'default-deny:write', 'write:root-itself', 'grant:none'].includes(
      decision.rule,
    );
    if (ruleBased || decision.rule.startsWith('exclude:')) {
      return new McpdError('WRITE_DENIED', `${shown ?? 'path'}: write not permitted (${decision.reason})`);
    }
  }
  return notFoundOrDenied(shown);
}
