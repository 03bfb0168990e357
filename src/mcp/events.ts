import { InMemoryServerEventBus, type ServerEventBus } from '@modelcontextprotocol/server';
import type { ChangeFeed } from '../access/changes.js';
import type { RequestContext } from './context.js';

/**
 * Who is listening on a stream opened through the bus: consulted when a stream subscribes, so that
 * a listener hears only of roots its grants let it read, and each subscription is audited.
 */
export interface ListenerScope {
  /** Whether the listener may hear of changes in `root`. */
  permits(root: string): boolean;
  /** Called once per subscription (the audit record). */
  subscribed(): void;
}

/**
 * The bus a createMcpHandler endpoint listens on: each open listen stream is a subscriber.
 * `scope()` names the listener of the stream subscribing now (the request being served); without
 * one, a stream hears nothing, rather than everything.
 */
export function changeBus(feed: ChangeFeed, scope: () => ListenerScope | undefined): ServerEventBus {
  const local = new InMemoryServerEventBus();
  return {
    publish: (event) => local.publish(event),
    subscribe: (listener) => {
      const listening = scope();
      listening?.subscribed();
      const unsubscribeLocal = local.subscribe(listener);
      const unsubscribeFeed = feed.subscribe((event) => {
        if (listening?.permits(event.root)) listener(event);
      });
      return () => {
        unsubscribeLocal();
        unsubscribeFeed();
      };
    },
  };
}

/**
 * Who a listen stream belongs to: it hears of a root only when the principal's grants let it read
 * there, and its opening is audited.
 */
export function listenerScope(context: RequestContext, client: string | null): ListenerScope {
  const { services, principal } = context;
  const readable = new Set(services.files.visibleRoots(principal).map((root) => root.name));
  return {
    permits: (root) => readable.has(root),
    subscribed: () =>
      services.gate.recordSubscription(
        {
          principal,
          requestId: context.requestId,
          client: client ?? context.userAgent,
          userAgent: context.userAgent,
          transport: 'http',
          method: 'subscriptions/listen',
          tool: null,
        },
        [...readable],
      ),
  };
}
