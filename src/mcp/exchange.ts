/**
 * One HTTP exchange as the MCP layer sees it: how fast its connection drains (flow control for
 * streaming tools) and how the request ended (for the edge's metrics, log line and span). The
 * edge registers it under an id it stamps on the request; the server instance looks it up.
 */

/**
 * The SDK queues every notification without regard for how fast the client reads, so a tool asks
 * before each one whether the connection can take more, and waits when it cannot: a slow reader
 * slows the producer instead of growing a buffer.
 */
export interface StreamFlow {
  /** Resolves once the connection has room for more (immediately when it has). */
  whenWritable(): Promise<void>;
}

export interface Exchange {
  readonly flow: StreamFlow;
  /** Set by the handler when the request failed: the JSON-RPC error code of a protocol error, or `tool_error` for an isError result. */
  errorType?: string;
}

const ALWAYS_WRITABLE: StreamFlow = { whenWritable: () => Promise.resolve() };

/** An exchange nobody watches (stdio, or a request the edge did not stamp). */
export function detachedExchange(): Exchange {
  return { flow: ALWAYS_WRITABLE };
}

/** The header the HTTP edge stamps (after removing any a client sent) to name one exchange. */
export const EXCHANGE_HEADER = 'x-mcpd-exchange';

/** Exchanges in flight, by the id the edge stamped on them. */
export class ExchangeRegistry {
  private readonly exchanges = new Map<string, Exchange>();

  register(exchangeId: string, exchange: Exchange): () => void {
    this.exchanges.set(exchangeId, exchange);
    return () => {
      this.exchanges.delete(exchangeId);
    };
  }

  get(exchangeId: string | null | undefined): Exchange {
    return (exchangeId && this.exchanges.get(exchangeId)) || detachedExchange();
  }

  get size(): number {
    return this.exchanges.size;
  }
}
