import type { RequestId } from '@modelcontextprotocol/server';

/**
 * Cancellation for stateless 2025-era HTTP. A 2025 client cancels with `notifications/cancelled`
 * in a request of its own, and without a session nothing ties it to the call it names: only the
 * caller's identity and the JSON-RPC id do. So a call in flight is found by principal, User-Agent
 * and id, and only when exactly one call matches: a principal can never cancel another's call,
 * and an ambiguous id cancels nothing. (2026-07-28 clients cancel by closing the response stream;
 * calls on another replica are out of reach until the task store is shared.)
 */
export class InFlightCalls {
  private readonly calls = new Map<string, Set<AbortController>>();

  /** Makes a call cancellable until the returned function is called (when its exchange ends). */
  register(principal: string, userAgent: string | null, id: RequestId, call: AbortController): () => void {
    const key = keyOf(principal, userAgent, id);
    let set = this.calls.get(key);
    if (!set) {
      set = new Set();
      this.calls.set(key, set);
    }
    set.add(call);
    return () => {
      set.delete(call);
      if (set.size === 0 && this.calls.get(key) === set) this.calls.delete(key);
    };
  }

  /** Aborts the one call matching, if exactly one does; says whether it did. */
  cancel(principal: string, userAgent: string | null, id: RequestId): boolean {
    const set = this.calls.get(keyOf(principal, userAgent, id));
    if (set?.size !== 1) return false;
    const [call] = set;
    call?.abort();
    return true;
  }
}

function keyOf(principal: string, userAgent: string | null, id: RequestId): string {
  return JSON.stringify([principal, userAgent, typeof id, String(id)]);
}
