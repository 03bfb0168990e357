import type { ToolDefinition } from './toolkit.js';
import { TOOLS } from './tools/index.js';
import { type Era, encodeResult, type ServerInfo } from './wire.js';

/**
 * The tool table, built once: each tool by name, and the tools/list answer of each era already
 * serialised, so listing the tools costs a string splice. Tool definitions do not depend on the
 * configuration (what a caller may do with them does, and is decided per call).
 */
export interface ToolCatalog {
  readonly byName: ReadonlyMap<string, ToolDefinition>;
  /** The tools/list result, serialised, per era (2026-07-28 carries cache fields and the server's identity). */
  readonly listing: Readonly<Record<Era, string>>;
}

const JSON_SCHEMA_TARGET = 'draft-2020-12';

/** Standard Schema's JSON Schema face (zod 4.2 and later), which the SDK converts through too. */
type Convertible = {
  readonly '~standard': {
    readonly jsonSchema: Record<'input' | 'output', (options: { target: string }) => Record<string, unknown>>;
  };
};

/**
 * A zod schema as the SDK lists it: converted through Standard Schema's JSON Schema face, with
 * `type: "object"` stamped at the root of an input schema (the protocol requires objects there).
 */
function jsonSchemaOf(schema: unknown, io: 'input' | 'output'): Record<string, unknown> {
  const converted = (schema as Convertible)['~standard'].jsonSchema[io]({ target: JSON_SCHEMA_TARGET });
  if (io === 'output') return converted;
  return { type: 'object', ...converted };
}

/** One entry of tools/list, field for field what the SDK's McpServer lists for a registered tool. */
export function listedTool(tool: ToolDefinition): Record<string, unknown> {
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: jsonSchemaOf(tool.input, 'input'),
    annotations: { title: tool.title, ...tool.annotations },
    ...(tool.kind === 'structured' ? { outputSchema: jsonSchemaOf(tool.output, 'output') } : {}),
  };
}

let built: { server: ServerInfo; catalog: ToolCatalog } | undefined;

export function toolCatalog(server: ServerInfo): ToolCatalog {
  if (built?.server === server) return built.catalog;
  const listing = { tools: TOOLS.map(listedTool) };
  const catalog: ToolCatalog = {
    byName: new Map(TOOLS.map((tool) => [tool.name, tool])),
    listing: {
      modern: JSON.stringify(encodeResult('modern', 'tools/list', listing, server)),
      legacy: JSON.stringify(encodeResult('legacy', 'tools/list', listing, server)),
    },
  };
  built = { server, catalog };
  return catalog;
}
