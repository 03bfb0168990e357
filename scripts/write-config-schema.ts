// Regenerates schema/mcpd.config.schema.json from the zod schema (npm run schema).
// A test fails when the committed file is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderConfigJsonSchema } from '../src/config/jsonSchema.js';

const target = fileURLToPath(new URL('../schema/mcpd.config.schema.json', import.meta.url));
writeFileSync(target, renderConfigJsonSchema());
process.stderr.write(`wrote ${target}\n`);
