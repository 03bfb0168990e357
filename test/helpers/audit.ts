import { readFile } from 'node:fs/promises';
import type { AuditRecord } from '../../src/audit/record.js';

/** Parses every line of an audit file; a line that is not a JSON record fails the test. */
export async function readAudit(file: string): Promise<AuditRecord[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as AuditRecord);
}

/** Waits until the audit file holds at least `count` records matching `predicate` (sinks are asynchronous). */
export async function waitForAudit(
  file: string,
  predicate: (record: AuditRecord) => boolean,
  count = 1,
  timeoutMs = 5000,
): Promise<AuditRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const matching = (await readAudit(file)).filter(predicate);
    if (matching.length >= count || Date.now() > deadline) return matching;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
