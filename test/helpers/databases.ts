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
