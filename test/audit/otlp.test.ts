import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.js';
import { readAuditChain } from '../helpers/audit.js';
import { errorCode, modernHttpClient } from '../helpers/clients.js';
import { logAttribute, startLogReceiver } from '../helpers/otlp.js';
import { runMcpd, serveMcpd } from '../helpers/process.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Audit records shipped as OTLP log records by the OpenTelemetry exporter, to a receiver on
 * loopback (a collector's OTLP/HTTP endpoint): each record's line as the body, verifiable as a
 * chain from what the collector kept; a collector that refuses turns mcpd not ready and stops
 * file operations, and once it takes records again every held one arrives and serving resumes.
 */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Result {
  isError?: boolean;
  content: { type: string; text?: string }[];
  _meta?: Record<string, unknown>;
}

describe('audit records over OTLP logs', () => {
  it('reach the collector as the file has them; a failing collector stops serving, a recovered one resumes it with nothing lost', async () => {
    const receiver = await startLogReceiver();
    cleanups.push(() => receiver.close());
    const demo = await demoCopy();
    cleanups.push(demo.cleanup);
    const config = await demo.configWithAudit(
      'shipped.yaml',
      `  sink: file\n  path: ./audit.log\n  otlp:\n    endpoint: ${receiver.url}\n    timeoutMs: 500\n    headers:\n      x-tenant: platform\n`,
      'limits:\n  rateLimit: { perSecond: 10000, burst: 10000 }\n',
    );
    const serving = await serveMcpd(['--config', config, '--port', '0']);
    cleanups.push(() => serving.stop());
    const base = new URL(serving.url).origin;
    const client = await modernHttpClient(serving.url, 'shipped');
    cleanups.push(() => client.close());
    const read = async (path: string) => (await client.callTool({ name: 'read_file', arguments: { path } })) as Result;

    expect((await read('README.md')).isError).toBeFalsy();
    expect((await read('.env')).isError).toBe(true);
    const shipped = () =>
      receiver.records.map(({ record }) => JSON.parse(record.body?.stringValue ?? '{}') as AuditRecord);
    await until(() => shipped().filter((r) => r.client === 'shipped').length === 2, {
      what: 'the first records at the collector',
    });
    expect(receiver.headers['x-tenant']).toBe('platform');
    const [first] = receiver.records;
    expect(first?.resource['service.name']).toBe('mcpd');
    expect(first?.record.eventName).toBe('mcpd.audit');
    const denied = receiver.records.find(({ record }) => logAttribute(record, 'mcpd.audit.decision') === 'deny');
    expect(denied?.record).toMatchObject({ severityText: 'WARN' });
    expect(logAttribute(denied?.record ?? { timeUnixNano: '', attributes: [] }, 'mcpd.audit.rule')).toMatch(/exclude/);

    // The collector refuses (503, as one shedding load or restarting does).
    receiver.down();
    let served = 2;
    let refused: Result | undefined;
    for (let i = 0; i < 500 && refused === undefined; i++) {
      const result = await read('README.md');
      if (errorCode(result) === 'UNAVAILABLE') refused = result;
      else served += 1;
    }
    expect(refused?.content[0]?.text).toMatch(/audit log cannot be written/);
    const notReady = await fetch(`${base}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ reason: 'the audit log cannot be written' });
    await until(() => /audit collector unreachable/.test(serving.stderr()), {
      what: 'the log line naming the failure',
    });

    receiver.up();
    await until(async () => (await fetch(`${base}/ready`)).status === 200, { what: 'readiness to come back' });
    expect((await read('docs/architecture.md')).isError).toBeFalsy();
    served += 1;
    await client.close();
    expect(await serving.stop()).toBe(0);

    // Nothing lost: the collector holds every record the file holds, once each, in order.
    const file = await readAuditChain(join(demo.dir, 'audit.log'));
    const atCollector = shipped();
    expect(atCollector.map((r) => r.seq)).toEqual(file.map((r) => r.seq));
    expect(atCollector).toEqual(file);
    expect(file.filter((r) => r.client === 'shipped' && r.outcome !== 'error')).toHaveLength(served);
    // And the bodies are the lines: the chain verifies from the collector's copy alone.
    const copy = join(demo.dir, 'from-collector.log');
    await writeFile(copy, receiver.records.map(({ record }) => `${record.body?.stringValue}\n`).join(''));
    expect(await readFile(copy, 'utf8')).toBe(await readFile(join(demo.dir, 'audit.log'), 'utf8'));
    const verified = await runMcpd(['audit', 'verify', copy]);
    expect(verified.code, verified.stdout).toBe(0);
  }, 60_000);
});
