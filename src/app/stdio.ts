import type { Readable, Writable } from 'node:stream';
import type { Config } from '../config/schema.js';
import type { Runtime } from '../services.js';
import { serveStdioConnection } from '../stdio/connection.js';
import { type AppDeps, Core } from './core.js';

export interface StdioApp {
  /** Resolves when the client closes stdin. */
  readonly closed: Promise<void>;
  readonly runtime: () => Runtime;
  reload(config: Config): Promise<{ ignored: string[] }>;
  /** Stop taking requests, finish those in flight within the grace period, cancel the rest, close. */
  shutdown(): Promise<void>;
  /** The client went away: nothing is left to answer, only records to settle. */
  close(): Promise<void>;
  /** Requests the fast path answered (the rest went to the SDK's server). */
  readonly fastAnswered: () => number;
}

export async function startStdioApp(
  config: Config,
  deps: AppDeps & { readonly input: Readable; readonly output: Writable },
): Promise<StdioApp> {
  const core = await Core.start(config, deps);
  const connection = serveStdioConnection({
    services: () => core.current,
    cancelAll: core.stop.signal,
    changes: core.changes,
    version: deps.version,
    logger: deps.logger,
    input: deps.input,
    output: deps.output,
  });
  core.serving();
  // The connection drains by refusing new requests; cancelled work answers within the same drain.
  const transport = {
    drain: (graceMs: number) => connection.drain(graceMs),
    settle: async (ms: number) => {
      await connection.drain(ms);
    },
    close: () => connection.close(),
  };
  let stopping: Promise<void> | undefined;
  return {
    closed: connection.closed,
    close: () => {
      stopping ??= core.close(transport);
      return stopping;
    },
    runtime: () => core.current,
    fastAnswered: connection.fastAnswered,
    reload: (next) => core.reload(next),
    shutdown: () => {
      stopping ??= core.shutdown(transport);
      return stopping;
    },
  };
}
