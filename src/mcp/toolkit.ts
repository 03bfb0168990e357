import type { ContentBlock } from '@modelcontextprotocol/server';
import type * as z from 'zod';
import type { AuditedDatabases } from '../access/databases.js';
import type { AuditedFiles } from '../access/files.js';
import type { Caller } from '../access/gate.js';
import type { Config } from '../config/schema.js';

/**
 * What a tool may use while it runs. Tools see this and nothing of the SDK, of the policy engine
 * or of the file layer, so the way requests reach them can change without touching a tool, and no
 * tool can reach a file around the audit.
 */
export interface ToolContext {
  readonly caller: Caller;
  /** Every file a tool touches, it touches through here: decided, done and audited. */
  readonly files: AuditedFiles;
  /** Every statement a tool runs, it runs through here: planned, judged, run and audited. */
  readonly databases: AuditedDatabases;
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

interface ToolBase<I extends z.ZodType> {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly input: I;
  readonly annotations: ToolAnnotations;
  /** The grant a caller needs somewhere to use the tool at all; a token without it is challenged. */
  readonly requires: 'read' | 'write' | null;
}

/**
 * A tool whose answer is a value: it declares an output schema, returns `structuredContent`, and
 * its `content` is always `render(value)`, so the text says nothing the structured value lacks.
 * Clients that read only `structuredContent` (Claude Code, VS Code) and clients that read only
 * `content` see the same answer.
 */
export interface StructuredTool<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> extends ToolBase<I> {
  readonly kind: 'structured';
  readonly output: O;
  /** The text form of the value; compact JSON by default. */
  readonly render: (value: z.output<O>) => ContentBlock[];
  run(args: z.output<I>, ctx: ToolContext): Promise<z.output<O>>;
}

/**
 * A tool whose answer is file contents: no output schema and no `structuredContent`, because a
 * client that prefers `structuredContent` would then never show the contents. Each file's text
 * appears once, beside a small metadata block.
 */
export interface ContentTool<I extends z.ZodType = z.ZodType> extends ToolBase<I> {
  readonly kind: 'content';
  run(args: z.output<I>, ctx: ToolContext): Promise<ContentBlock[]>;
}

export type ToolDefinition = StructuredTool | ContentTool;

export const READ_ONLY: ToolAnnotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};

/** The structured value as one compact JSON text block: the spec's default for `content`. */
export function asJson(value: unknown): ContentBlock[] {
  return [{ type: 'text', text: JSON.stringify(value) }];
}

export function defineTool<I extends z.ZodType, O extends z.ZodType>(
  tool: Omit<StructuredTool<I, O>, 'kind' | 'render'> & { render?: (value: z.output<O>) => ContentBlock[] },
): ToolDefinition {
  return { ...tool, kind: 'structured', render: tool.render ?? asJson } as unknown as ToolDefinition;
}

export function defineContentTool<I extends z.ZodType>(tool: Omit<ContentTool<I>, 'kind'>): ToolDefinition {
  return { ...tool, kind: 'content' } as unknown as ToolDefinition;
}

/** What a tool call answers: content always, structuredContent exactly when the tool is structured. */
export function toolResult(
  tool: ToolDefinition,
  output: unknown,
): { content: ContentBlock[]; structuredContent?: Record<string, unknown> } {
  if (tool.kind === 'content') return { content: output as ContentBlock[] };
  return { content: tool.render(output), structuredContent: output as Record<string, unknown> };
}
