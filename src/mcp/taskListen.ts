import { CLIENT_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from '@modelcontextprotocol/server';
import type { ChangeFeed, FeedEvent } from '../access/changes.js';
import type { Route } from './dispatch.js';
import { clientLabel } from './envelope.js';
import { listenerScope } from './events.js';
import { MAX_FOLLOWED_TASKS, type TaskRunner } from './tasks.js';
import { encodeResult, type ProtocolFailure, type ServerInfo } from './wire.js';

/**
 * A `subscriptions/listen` stream that follows tasks (the Tasks extension's `taskIds` filter):
 * served here, because the SDK's listen router knows only the four change notifications. The
 * stream is acknowledged with what it will hear (the tasks the principal owns, and the resource
 * changes it asked for, within its grants), tells each followed task's state at once, then sends
 * `notifications/tasks` whenever one changes on any replica, and ends with its final result once
 * every followed task has ended and it follows nothing else, or when the process shuts down.
 */

/** What a listen request asks to hear; the fields mcpd cannot deliver are dropped from the ack. */
interface Filter {
  readonly resourcesListChanged?: true;
  readonly resourceSubscriptions?: readonly string[];
  readonly taskIds: readonly string[];
}

const MAX_TASK_ID = 128;

function filterOf(params: Record<string, unknown> | undefined): Filter | ProtocolFailure {
  const invalid = (why: string): ProtocolFailure => ({ code: -32602, message: `Invalid params: ${why}` });
  const notifications = params?.notifications;
  if (notifications === null || typeof notifications !== 'object' || Array.isArray(notifications)) {
    return invalid("'notifications' is required and must be a valid SubscriptionFilter");
  }
  const { taskIds, resourcesListChanged, resourceSubscriptions } = notifications as Record<string, unknown>;
  if (
    !Array.isArray(taskIds) ||
    !taskIds.every((id) => typeof id === 'string' && id.length > 0 && id.length <= MAX_TASK_ID)
  ) {
    return invalid('notifications.taskIds must be task ids');
  }
  if (taskIds.length > MAX_FOLLOWED_TASKS) {
    return invalid(`a stream follows at most ${MAX_FOLLOWED_TASKS} tasks`);
  }
  if (resourceSubscriptions !== undefined) {
    if (!Array.isArray(resourceSubscriptions) || !resourceSubscriptions.every((uri) => typeof uri === 'string')) {
      return invalid('notifications.resourceSubscriptions must be URIs');
    }
  }
  return {
    taskIds: taskIds as string[],
    ...(resourcesListChanged === true ? { resourcesListChanged: true } : {}),
    ...(Array.isArray(resourceSubscriptions) && resourceSubscriptions.length > 0
      ? { resourceSubscriptions: resourceSubscriptions as string[] }
      : {}),
  };
}

/** The resource change a feed event is, when the filter asked for it. */
function resourceNotification(
  filter: Filter,
  event: FeedEvent,
): { method: string; params: Record<string, unknown> } | undefined {
  if (event.kind === 'resources_list_changed') {
    return filter.resourcesListChanged ? { method: 'notifications/resources/list_changed', params: {} } : undefined;
  }
  return filter.resourceSubscriptions?.includes(event.uri)
    ? { method: 'notifications/resources/updated', params: { uri: event.uri } }
    : undefined;
}

export function taskListenRoute(
  request: { readonly id: string | number; readonly params: Record<string, unknown> | undefined },
  deps: { readonly tasks: TaskRunner; readonly changes: ChangeFeed; readonly server: ServerInfo },
): Route {
  const subscriptionId = request.id;
  const stamped = (params: Record<string, unknown>) => ({
    ...params,
    _meta: { [SUBSCRIPTION_ID_META_KEY]: subscriptionId },
  });
  const complete = () => ({
    kind: 'result' as const,
    text: JSON.stringify(
      encodeResult(
        'modern',
        'subscriptions/listen',
        { _meta: { [SUBSCRIPTION_ID_META_KEY]: subscriptionId } },
        deps.server,
      ),
    ),
  });
  return {
    async run(context, notify) {
      const filter = filterOf(request.params);
      if ('code' in filter) return { kind: 'error', error: filter };
      // Every notification in order, each once the one before it is written.
      let queue = Promise.resolve();
      const send = (method: string, params: Record<string, unknown>) => {
        queue = queue.then(() => notify(method, stamped(params))).catch(() => {});
      };
      let end: () => void = () => {};
      const ended = new Promise<void>((resolve) => {
        end = resolve;
      });
      const hearsResources = filter.resourcesListChanged === true || filter.resourceSubscriptions !== undefined;
      // A change seen before the acknowledgement is written waits for it: the ack comes first.
      let acknowledged = false;
      const early: Record<string, unknown>[] = [];
      let settled = () => false;
      const watch = await deps.tasks.watch(context.principal, filter.taskIds, (task) => {
        if (!acknowledged) early.push(task);
        else send('notifications/tasks', task);
        if (!hearsResources && settled()) end();
      });
      if ('code' in watch) return { kind: 'error', error: watch };
      settled = () => watch.settled();
      const meta = request.params?._meta as Record<string, unknown> | undefined;
      const scope = listenerScope(
        context,
        clientLabel((meta?.[CLIENT_INFO_META_KEY] as { name?: unknown } | undefined)?.name),
      );
      scope.subscribed();
      const honoured = {
        ...(filter.resourcesListChanged ? { resourcesListChanged: true } : {}),
        ...(filter.resourceSubscriptions ? { resourceSubscriptions: [...filter.resourceSubscriptions] } : {}),
        taskIds: [...watch.accepted],
      };
      send('notifications/subscriptions/acknowledged', { notifications: honoured });
      for (const task of watch.current) send('notifications/tasks', task);
      acknowledged = true;
      for (const task of early) send('notifications/tasks', task);
      const stopHearing = hearsResources
        ? deps.changes.subscribe((event) => {
            if (!scope.permits(event.root)) return;
            const note = resourceNotification(filter, event);
            if (note) send(note.method, note.params);
          })
        : () => {};
      const stops = [context.signal, deps.tasks.closing];
      for (const signal of stops) signal.addEventListener('abort', end, { once: true });
      if (stops.some((signal) => signal.aborted) || (!hearsResources && watch.settled())) end();
      try {
        await ended;
        await queue;
        return complete();
      } finally {
        watch.stop();
        stopHearing();
        for (const signal of stops) signal.removeEventListener('abort', end);
      }
    },
  };
}
