import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { OtlpAuditSink } from '../../src/audit/otlpSink.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { MemoryAuditSink, TeeAuditSink } from '../../src/audit/sink.js';
import { ACCESS_FIELDS } from '../helpers/audit.js';

/**
 * The sinks' bounds and health, with a scripted exporter in place of the network (the real
 * exporter against a receiver is test/audit/otlp.test.ts): how many records a sink holds before
 * it turns mcpd away, and that what it holds is delivered, in order, once it can be.
 */

/** An exporter whose answers the test gives: each export waits until answered. */
function scriptedExporter() {
  const calls: { records: { body?: unknown }[]; answer: (ok: boolean) => void }[] = [];
  return {
    calls,
    exporter: {
      export(records: { body?: unknown }[], done: (result: { code: number; error?: Error }) => void) {
        calls.push({
          records,
          answer: (ok) => done(ok ? { code: 0 } : { code: 1, error: new Error('refused') }),
        });
      },
      async shutdown() {},
    },
  };
}

const settings = {
  endpoint: 'http://127.0.0.1:1/v1/logs',
  headers: {},
  timeoutMs: 1000,
  maxQueueRecords: 100,
  serviceName: 'mcpd',
  version: 'test',
};

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe('the OTLP sink', () => {
  it('is unhealthy past maxQueueRecords held, and healthy again once the collector has taken them, in order', async () => {
    const { calls, exporter } = scriptedExporter();
    const sink = new OtlpAuditSink(settings, {}, exporter as never);
    const log = new AuditLog(sink);
    for (let i = 0; i < 100; i++) log.write(ACCESS_FIELDS);
    expect(sink.healthy).toBe(true);
    log.write(ACCESS_FIELDS);
    expect(sink.healthy).toBe(false);
    expect(sink.pendingRecords).toBe(101);
    const seqs: number[] = [];
    while (sink.pendingRecords > 0) {
      await waitFor(() => calls.length > 0);
      const call = calls.shift();
      for (const record of call?.records ?? []) seqs.push((JSON.parse(String(record.body)) as AuditRecord).seq);
      call?.answer(true);
    }
    expect(sink.healthy).toBe(true);
    expect(seqs).toEqual(Array.from({ length: 101 }, (_, i) => i));
  });

  it('keeps a refused batch at the head and sends it again (at least once, never reordered)', async () => {
    const { calls, exporter } = scriptedExporter();
    let errors = 0;
    let recoveries = 0;
    const sink = new OtlpAuditSink(
      settings,
      { onError: () => (errors += 1), onRecovered: () => (recoveries += 1) },
      exporter as never,
    );
    const log = new AuditLog(sink);
    for (let i = 0; i < 3; i++) log.write(ACCESS_FIELDS);
    await waitFor(() => calls.length === 1);
    calls.shift()?.answer(false);
    expect(sink.healthy).toBe(false);
    log.write(ACCESS_FIELDS);
    // The retry (after its backoff) carries the same records first, with the one written since.
    await waitFor(() => calls.length === 1);
    const retried = calls.shift();
    expect(retried?.records.map((r) => (JSON.parse(String(r.body)) as AuditRecord).seq)).toEqual([0, 1, 2, 3]);
    retried?.answer(true);
    expect(sink.healthy).toBe(true);
    expect([errors, recoveries]).toEqual([1, 1]);
    await sink.close();
  });
});

describe('several sinks', () => {
  it('are healthy only while every one is', () => {
    const memory = new MemoryAuditSink();
    let other = true;
    const tee = new TeeAuditSink([
      memory,
      {
        get healthy() {
          return other;
        },
        write() {},
        async flush() {},
        async close() {},
      },
    ]);
    expect(tee.healthy).toBe(true);
    other = false;
    expect(tee.healthy).toBe(false);
    // A tee of sinks without files has nothing to rotate, so the log writes no rotation record.
    const log = new AuditLog(tee);
    log.reopen();
    log.write(ACCESS_FIELDS);
    expect(memory.records.map((record) => record.op)).toEqual(['read']);
  });
});
