/**
 * Flow control between a tool that streams (progress notifications) and the connection it streams
 * to. The SDK queues every notification without regard for how fast the client reads, so a tool
 * asks before each one whether the connection can take more, and waits when it cannot: a slow
 * reader slows the producer instead of growing a buffer.
 */
export interface StreamFlow {
  /** Resolves once the connection has room for more (immediately when it has). */
  whenWritable(): Promise<void>;
}

const ALWAYS_WRITABLE: StreamFlow = { whenWritable: () => Promise.resolve() };

/** The header the HTTP edge stamps (after removing any a client sent) to name one exchange. */
export const EXCHANGE_HEADER = 'x-mcpd-exchange';

/** Exchanges in flight, by the id the edge stamped on them. */
export class FlowRegistry {
  private readonly flows = new Map<string, StreamFlow>();

  register(exchangeId: string, flow: StreamFlow): () => void {
    this.flows.set(exchangeId, flow);
    return () => {
      this.flows.delete(exchangeId);
    };
  }

  flowOf(exchangeId: string | null | undefined): StreamFlow {
    return (exchangeId && this.flows.get(exchangeId)) || ALWAYS_WRITABLE;
  }

  get size(): number {
    return this.flows.size;
  }
}

export { ALWAYS_WRITABLE };
