import { messagesOf, postModern } from './raw.js';

/** What a `query` call answers, as the corpora read it. */
export interface QueryAnswer {
  readonly result?: {
    readonly isError?: boolean;
    readonly content: { readonly text: string }[];
    readonly structuredContent?: { readonly truncated?: string | null };
  };
  readonly error?: { readonly code: number; readonly message: string };
}

/** A `query` tool call as one raw 2026-07-28 request, answered as its first message. */
export async function queryTool(
  url: string,
  database: string,
  client: string,
  sql: string,
  params: unknown[] = [],
): Promise<QueryAnswer> {
  const [message] = await messagesOf(
    await postModern(url, 'tools/call', { name: 'query', arguments: { database, sql, params } }, { client }),
  );
  return message as QueryAnswer;
}

/** A hostile corpus: statements that must be refused, harmless ones that must run, and ones that must hit a bound. */
export interface Corpus {
  readonly refused: readonly string[];
  readonly allowed: readonly string[];
  readonly bounded: readonly { readonly sql: string; readonly outcome: 'TIMEOUT' | 'QUERY_FAILED' | 'truncated' }[];
}

/**
 * Runs a corpus through `query` in order and checks each answer's kind: nothing refused ran,
 * every harmless one ran, every bounded one stopped at its bound. Returns every answer as JSON,
 * for the caller to search for what must never appear.
 */
export async function runCorpus(
  query: (sql: string, params: unknown[]) => Promise<QueryAnswer>,
  corpus: Corpus,
  paramsFor: (sql: string, kind: 'refused' | 'allowed') => unknown[],
): Promise<string[]> {
  const { expect } = await import('vitest');
  const answers: string[] = [];
  const ran: string[] = [];
  for (const sql of corpus.refused) {
    const answer = await query(sql, paramsFor(sql, 'refused'));
    answers.push(JSON.stringify(answer));
    // A schema refusal (an empty statement) is a JSON-RPC error; everything else a tool error.
    if (answer.result && !answer.result.isError) ran.push(sql);
  }
  expect(ran, JSON.stringify(ran)).toEqual([]);
  for (const sql of corpus.allowed) {
    const answer = await query(sql, paramsFor(sql, 'allowed'));
    answers.push(JSON.stringify(answer));
    expect(answer.result?.isError, `${sql}: ${JSON.stringify(answer)}`).toBeFalsy();
  }
  for (const { sql, outcome } of corpus.bounded) {
    const answer = await query(sql, []);
    const text = JSON.stringify(answer);
    answers.push(text);
    if (outcome === 'truncated') {
      expect(answer.result?.isError, `${sql}: ${text.slice(0, 400)}`).toBeFalsy();
      expect(answer.result?.structuredContent?.truncated, sql).toMatch(/^(rows|bytes)$/);
    } else {
      expect(text.includes(`"text":"${outcome}:`), `${sql}: ${text.slice(0, 400)}`).toBe(true);
    }
  }
  return answers;
}
