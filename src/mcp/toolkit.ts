import type { ContentBlock } from '@modelcontextprotocol/server';
import type * as z from 'zod';
import type { AccessGate, Caller } from '../access/gate.js';
import type { Config } from '../config/schema.js';

/**
 * What a tool may use while it runs. Tools see this and nothing of the SDK, so the way requests
 * reach them (the SDK's per-request handler today) can change without touching a tool.
 */
export interface ToolContext {
  readonly caller: Caller;
  readonly gate: AccessGate;
  readonly config: Config;
  /** Aborted when the client cancels or disconnects. */
  readonly signal: AbortSignal;
  /** Reports progress when the client asked for it; a no-op otherwise. */
  progress(progress: number, total: number | undefined, message: string): Promise<void>;
}

export interface ToolAnnotations {
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: false;
}

export interface ToolOutput<O> {
  readonly structured: O;
  /** The content blocks; by default one text block holding the structured value as JSON. */
  readonly content?: ContentBlock[];
}

export interface ToolDefinition<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly input: I;
  readonly output: O;
  readonly annotations: ToolAnnotations;
  /** The grant a caller needs somewhere to use the tool at all; a token without it is challenged. */
  readonly requires: 'read' | 'write' | null;
  run(args: z.output<I>, ctx: ToolContext): Promise<ToolOutput<z.output<O>>>;
}

export const READ_ONLY: ToolAnnotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};

export function defineTool<I extends z.ZodType, O extends z.ZodType>(tool: ToolDefinition<I, O>): ToolDefinition {
  return tool as unknown as ToolDefinition;
}

/** Pretty JSON for the text block mirroring structured content. */
export function asText(value: unknown): ContentBlock[] {
  return [{ type: 'text', text: JSON.stringify(value, null, 2) }];
}
