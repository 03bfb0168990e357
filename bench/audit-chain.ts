/**
 * The cost of the audit chain: the same records written to a file by the sink alone (no chain),
 * by the AuditLog with a SHA-256 chain, with an HMAC chain, and with a SHA-256 chain rotated every
 * MiB (about 2,700 records a file), in interleaved rounds so the machine's noise falls on all four
 * alike. Reported as records per second and as ratios against the sink alone, measured in this run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileAuditSink, NO_ROTATION } from '../src/audit/fileSink.js';
import { AuditLog } from '../src/audit/log.js';
import type { AuditRecord } from '../src/audit/record.js';

const RECORDS = Number(process.env.BENCH_AUDIT_RECORDS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** A typical access record: a read allowed under a read rule. */
const FIELDS = {
  requestId: 'f4cdabc3-5e91-4156-9fa0-2038546062a5',
  principal: 'anonymous',
  client: 'bench',
  userAgent: 'node',
  transport: 'http',
  method: 'tools/call',
  tool: 'read_file',
  root: 'MCP Demo Project',
  path: 'docs/architecture.md',
  requested: 'docs/architecture.md',
  op: 'read',
  decision: 'allow',
  rule: 'read:*.md',
  reason: 'matches a read rule',
  bytes: 1234,
  durationMs: 0.42,
  outcome: 'ok',
} as const;

type Variant = 'sink alone' | 'chain sha256' | 'chain hmac-sha256' | 'sha256, rotated';

async function round(variant: Variant, file: string): Promise<number> {
  const sink = new FileAuditSink(
    file,
    variant === 'sha256, rotated' ? { maxBytes: 1024 * 1024, interval: null } : NO_ROTATION,
  );
  const started = performance.now();
  if (variant === 'sink alone') {
    for (let i = 0; i < RECORDS; i++) {
      const record = { time: new Date().toISOString(), seq: i, ...FIELDS, prev: '', hash: '' } as AuditRecord;
      sink.write(record, JSON.stringify(record));
    }
  } else {
    const log = new AuditLog(sink, undefined, variant === 'chain hmac-sha256' ? Buffer.from('k'.repeat(48)) : null);
    for (let i = 0; i < RECORDS; i++) log.write(FIELDS);
  }
  await sink.close();
  return RECORDS / ((performance.now() - started) / 1000);
}

export async function auditChain(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpd-bench-audit-'));
  const variants: Variant[] = ['sink alone', 'chain sha256', 'chain hmac-sha256', 'sha256, rotated'];
  const rates = new Map<Variant, number[]>(variants.map((variant) => [variant, []]));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      // Rotated order per round: no variant always runs first (cold) or last.
      for (const [i] of variants.entries()) {
        const variant = variants[(i + r) % variants.length] as Variant;
        rates.get(variant)?.push(await round(variant, join(dir, `${r}-${i}.log`)));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const base = median(rates.get('sink alone') ?? []);
  process.stdout.write(`\naudit chain (${RECORDS} records to a file, ${ROUNDS} rotated rounds, medians)\n`);
  process.stdout.write('variant              records/s   vs sink alone\n');
  for (const variant of variants) {
    const rate = median(rates.get(variant) ?? []);
    process.stdout.write(
      `${variant.padEnd(20)} ${Math.round(rate).toString().padStart(9)}   ${(rate / base).toFixed(2)}\n`,
    );
  }
}
