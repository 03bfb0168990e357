import { join } from 'node:path';
import { openAudit } from '../../src/app/core.js';
import { type HttpApp, startHttpApp } from '../../src/app/http.js';
import type { AuditLog } from '../../src/audit/log.js';
import { loadConfig, type ServerOverrides } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/ops/logger.js';

export interface TestServer {
  readonly url: string;
  /** http://127.0.0.1:PORT, without the /mcp path. */
  readonly base: string;
  readonly auditFile: string;
  readonly app: HttpApp;
  readonly config: Config;
  readonly audit: AuditLog;
  close(): Promise<void>;
}

/**
 * The real HTTP server (the same composition `mcpd serve` runs) in this process, on a free
 * loopback port, auditing to a file the test can parse.
 */
export async function startServer(
  configFile: string,
  overrides: ServerOverrides = {},
  /** Collects the server's log lines (parsed) instead of discarding them. */
  logs?: Record<string, unknown>[],
): Promise<TestServer> {
  const auditFile = join(configFile, '..', `audit-${Date.now()}-${Math.random().toString(36).slice(2)}.log`);
  const config = loadConfig({
    file: configFile,
    overrides: [
      { port: 0, host: '127.0.0.1', auditSink: 'file', auditPath: auditFile, logLevel: 'silent', ...overrides },
    ],
  });
  const logger = logs
    ? createLogger(config.log.level, {
        write: (line: string) => {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        },
      })
    : createLogger(config.log.level);
  const audit = openAudit(config, logger);
  const app = await startHttpApp(config, { logger, audit, version: 'test' });
  const base = app.url.replace(/\/mcp$/, '');
  let closed = false;
  return {
    url: app.url,
    base,
    auditFile,
    app,
    config,
    audit,
    async close() {
      if (closed) return;
      closed = true;
      await app.shutdown();
      await audit.close();
    },
  };
}
