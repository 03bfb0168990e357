import { readFile } from 'node:fs/promises';
import type { AuditRecord } from '../../src/audit/record.js';
import { until, WaitTimeout } from './wait.js';

/** The chain's own records: a process's genesis, a reload, a new file. */
const CHAIN_OPS = new Set(['genesis', 'reload', 'rotate']);

/**
 * Parses the access records of an audit file: every line, but for the chain's own records; a line
 * that is not a JSON record fails the test.
 */
export async function readAudit(file: string): Promise<AuditRecord[]> {
  return (await readAuditChain(file)).filter((record) => !CHAIN_OPS.has(record.op));
}

/** Every record of an audit file, the chain's own included. */
export async function readAuditChain(file: string): Promise<AuditRecord[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as AuditRecord);
}

/**
 * Waits until the audit file holds at least `count` records matching `predicate` (sinks are
 * asynchronous). Resolves with the matching records; after `timeoutMs`, with those there are, for
 * the caller's assertion to report.
 */
export async function waitForAudit(
  file: string,
  predicate: (record: AuditRecord) => boolean,
  count = 1,
  timeoutMs = 5000,
): Promise<AuditRecord[]> {
  let matching: AuditRecord[] = [];
  try {
    await until(
      async () => {
        matching = (await readAudit(file)).filter(predicate);
        return matching.length >= count;
      },
      { what: `${count} matching audit record(s) in ${file}`, timeoutMs, intervalMs: 25 },
    );
  } catch (error) {
    if (!(error instanceof WaitTimeout)) throw error;
  }
  return matching;
}

/** The fields of a typical access record (a read allowed under a read rule), for unit tests of the audit log. */
export const ACCESS_FIELDS = {
  requestId: 'r',
  principal: 'p',
  client: null,
  userAgent: null,
  transport: 'cli',
  method: 'tools/call',
  tool: 'read_file',
  root: 'r',
  path: 'a.md',
  requested: 'a.md',
  op: 'read',
  decision: 'allow',
  rule: 'read:**',
  reason: 'test',
  bytes: 1,
  durationMs: 0,
  outcome: 'ok',
} as const;
