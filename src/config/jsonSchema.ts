import * as z from 'zod';
import { configSchema } from './schema.js';

/** The JSON Schema of the config file as written (defaults optional), for editors. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://mcpd.dev/schema/mcpd.config.schema.json',
    title: 'mcpd configuration',
    description: 'Configuration file of mcpd (YAML or JSON). Generated from the zod schema in src/config/schema.ts.',
  };
}

export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
