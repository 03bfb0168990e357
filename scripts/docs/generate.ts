// The reference tables of docs/ that restate code, rendered from the code: the config schema, the
// error catalogue, the tool table and the metric registry. scripts/write-docs.ts (npm run docs)
// writes them into the regions between `<!-- generated:NAME:start -->` and
// `<!-- generated:NAME:end -->`; test/docs/docs.test.ts fails when a committed doc is stale.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { configJsonSchema } from '../../src/config/jsonSchema.js';
import { ERROR_CATALOGUE } from '../../src/errors.js';
import { TOOLS } from '../../src/mcp/tools/index.js';
import { Metrics } from '../../src/ops/metrics.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Prose (and generated lists) wrap at this width. */
export const WRAP = 100;

/** Every Markdown file whose regions are generated, and whose links are checked: repo-relative. */
export function docFiles(): string[] {
  const docs = readdirSync(join(REPO, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

export function readDoc(file: string): string {
  return readFileSync(join(REPO, file), 'utf8');
}

// ---------------------------------------------------------------------------------------------
// Markdown helpers

const code = (text: string) => `\`${text}\``;

/** One table cell: no line breaks, and a `|` that does not end the cell. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Words, with code spans kept whole so a line never breaks inside one. */
function words(text: string): string[] {
  return text.match(/(?:`[^`]*`|[^\s`])+/g) ?? [];
}

/** Wraps text at WRAP columns; the first line starts with `first`, the others with `rest`. */
export function wrap(text: string, first = '', rest = first): string {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of words(text)) {
    if (!empty && line.length + 1 + word.length > WRAP) {
      lines.push(line);
      line = rest + word;
    } else {
      line = empty ? line + word : `${line} ${word}`;
    }
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

/** The first sentence: up to the first full stop that ends a sentence (not "e.g.", "i.e.", "vs."). */
export function firstSentence(text: string): string {
  const stop = /(?<!\be\.g|\bi\.e|\bvs|\betc)\.(?=\s|$)/.exec(text);
  return stop ? text.slice(0, stop.index + 1) : text;
}

/**
 * Backticks around what a sentence from the source mentions bare: URLs, dotted names
 * (`server.publicUrl`), snake_case and camelCase names, and URL paths (`/ready`).
 */
const IDENTIFIER =
  /(?<![\w`.-])([a-z][a-zA-Z0-9_]*(?:\.[a-z][a-zA-Z0-9_]*)+|\/[a-z][\w./-]*\w|[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+)(?![\w`])/g;

export function quoteNames(text: string): string {
  return text
    .split(/(`[^`]*`|https?:\/\/[^\s)]+)/)
    .map((part, index) => {
      if (index % 2 === 0) {
        return part.replace(IDENTIFIER, (name) => (/^(e\.g|i\.e)$/.test(name) ? name : code(name)));
      }
      return part.startsWith('`') ? part : code(part);
    })
    .join('');
}

// ---------------------------------------------------------------------------------------------
// (1) The configuration, from the JSON Schema the zod schema produces (src/config/schema.ts).

type JsonSchema = {
  type?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
};

export interface ConfigRow {
  readonly path: string;
  readonly type: string;
  readonly default: string;
  /**
   * The `.describe()` text of the key's zod schema (its first sentence), or empty when it has none:
   * configTable then refuses to render, and the docs test names the key.
   */
  readonly description: string;
  /** Where the description came from: the schema, or nowhere. */
  readonly source: 'schema' | 'none';
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function range(schema: JsonSchema): string {
  const low =
    schema.exclusiveMinimum !== undefined
      ? schema.type === 'integer'
        ? schema.exclusiveMinimum + 1
        : undefined
      : schema.minimum;
  const high = schema.maximum !== undefined && schema.maximum < MAX_SAFE ? schema.maximum : undefined;
  if (low !== undefined && high !== undefined) return ` ${low}–${high}`;
  if (low !== undefined) return ` ≥ ${low}`;
  if (schema.exclusiveMinimum !== undefined) return ` > ${schema.exclusiveMinimum}`;
  if (high !== undefined) return ` ≤ ${high}`;
  return '';
}

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return code(String(schema.const));
  if (schema.enum) return schema.enum.map((value) => code(String(value))).join(' | ');
  switch (schema.type) {
    case 'string':
      return schema.format === 'uri' ? 'URL' : 'string';
    case 'integer':
    case 'number':
      return `${schema.type}${range(schema)}`;
    case 'boolean':
      return 'boolean';
    case 'array': {
      const items = schema.items ? typeOf(schema.items) : 'any';
      const list = schema.items?.enum ? `list of ${items}` : `${items}[]`;
      return schema.minItems ? `${list}, at least ${schema.minItems}` : list;
    }
    case 'object':
      if (schema.properties) return 'object';
      if (typeof schema.additionalProperties === 'object') {
        return `map of name to ${typeOf(schema.additionalProperties)}`;
      }
      return 'object';
    default:
      return 'any';
  }
}

const UNITS: [number, string][] = [
  [1024 * 1024 * 1024, 'GiB'],
  [1024 * 1024, 'MiB'],
  [1024, 'KiB'],
];

/** A readable gloss of a default: 4194304 bytes is 4 MiB, 900000 ms is 15 min. */
function gloss(key: string, value: number): string {
  if (/Bytes$/.test(key)) {
    const unit = UNITS.find(([size]) => value >= size && value % size === 0);
    return unit ? ` (${value / unit[0]} ${unit[1]})` : '';
  }
  if (/Ms$/.test(key) && value >= 1000) {
    if (value % 60_000 === 0 && value >= 120_000) return ` (${value / 60_000} min)`;
    if (value % 1000 === 0) return ` (${value / 1000} s)`;
  }
  return '';
}

function showValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map((item) => JSON.stringify(item)).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([key, item]) => `${key}: ${JSON.stringify(item)}`);
    return `{ ${entries.join(', ')} }`;
  }
  return JSON.stringify(value);
}

function defaultOf(key: string, schema: JsonSchema, required: string | null): string {
  if (required) return required;
  if (schema.default === undefined) return 'none';
  // An object section whose default is {}: its keys' own defaults apply (rows below it).
  if (schema.properties && JSON.stringify(schema.default) === '{}') return '';
  const value = schema.default;
  if (value === '') return '`""`';
  return `${code(showValue(value))}${typeof value === 'number' ? gloss(key, value) : ''}`;
}

function describe(schema: JsonSchema): Pick<ConfigRow, 'description' | 'source'> {
  if (schema.description) return { description: quoteNames(firstSentence(schema.description)), source: 'schema' };
  return { description: '', source: 'none' };
}

function walk(path: string, schema: JsonSchema, required: string | null, rows: ConfigRow[]): void {
  const key = path.slice(path.lastIndexOf('.') + 1);
  rows.push({ path, type: typeOf(schema), default: defaultOf(key, schema, required), ...describe(schema) });
  children(path, schema, rows);
}

function children(path: string, schema: JsonSchema, rows: ConfigRow[]): void {
  if (schema.properties) {
    for (const [name, child] of Object.entries(schema.properties)) {
      walk(`${path}.${name}`, child, schema.required?.includes(name) ? 'required' : null, rows);
    }
  } else if (schema.type === 'array' && schema.items?.properties) {
    children(`${path}[]`, schema.items, rows);
  }
}

/**
 * A discriminated union (`auth`): one row for the discriminator, described by the union's own
 * `.describe()` (what choosing a variant means), then each variant's keys.
 */
function union(path: string, schema: JsonSchema, variants: JsonSchema[], rows: ConfigRow[]): void {
  const discriminator = Object.keys(variants[0]?.properties ?? {})[0] ?? 'mode';
  const values = variants.map((variant) => variant.properties?.[discriminator]?.const);
  const fallback = (schema.default as Record<string, unknown> | undefined)?.[discriminator];
  const at = `${path}.${discriminator}`;
  rows.push({
    path: at,
    type: values.map((value) => code(String(value))).join(' | '),
    default: fallback === undefined ? 'required' : code(String(fallback)),
    ...describe(schema),
  });
  for (const variant of variants) {
    const value = variant.properties?.[discriminator]?.const;
    for (const [name, child] of Object.entries(variant.properties ?? {})) {
      if (name === discriminator) continue;
      const required = variant.required?.includes(name) ? `required with ${code(String(value))}` : null;
      walk(`${path}.${name}`, child, required, rows);
    }
  }
}

/** Every key of the configuration file, section by section (the file's top-level keys). */
export function configRows(): Map<string, ConfigRow[]> {
  const root = configJsonSchema() as JsonSchema;
  const sections = new Map<string, ConfigRow[]>();
  for (const [name, schema] of Object.entries(root.properties ?? {})) {
    if (name === '$schema') continue;
    const rows: ConfigRow[] = [];
    const variants = schema.oneOf ?? schema.anyOf;
    if (variants) union(name, schema, variants, rows);
    else if (schema.properties) children(name, schema, rows);
    else walk(name, schema, root.required?.includes(name) ? 'required' : null, rows);
    sections.set(name, rows);
  }
  return sections;
}

/** Throws, naming the keys, when a key has no description: add `.describe()` to its zod schema. */
function configTable(rows: readonly ConfigRow[]): string {
  const undescribed = rows.filter((row) => row.source === 'none').map((row) => row.path);
  if (undescribed.length > 0) {
    throw new Error(
      `config key${undescribed.length > 1 ? 's' : ''} without a description: ${undescribed.join(', ')} ` +
        '(add .describe() to the field in src/config/*.ts)',
    );
  }
  return table(
    ['key', 'type', 'default', 'description'],
    rows.map((row) => [code(row.path), row.type, row.default, row.description]),
  );
}

// ---------------------------------------------------------------------------------------------
// (2) The error catalogue (src/errors.ts).

function errorsTable(): string {
  return table(
    ['code', 'JSON-RPC', 'HTTP', 'when'],
    Object.entries(ERROR_CATALOGUE).map(([name, entry]) => [
      code(name),
      entry.jsonRpc === null ? '(none)' : String(entry.jsonRpc),
      entry.http === null ? '200' : String(entry.http),
      quoteNames(entry.when),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// (3) The tools (src/mcp/tools/index.ts).

interface Argument {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
  readonly default: unknown;
  readonly description: string | undefined;
}

function argumentsOf(input: z.ZodType): Argument[] {
  return propertiesOf(z.toJSONSchema(input, { io: 'input', unrepresentable: 'any' }) as JsonSchema, '');
}

/** An object's properties; an array of objects (`edit_file`'s `edits`) lists its items' too. */
function propertiesOf(schema: JsonSchema, prefix: string): Argument[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, property]) => [
    {
      name: prefix + name,
      type: typeOf(property),
      required: schema.required?.includes(name) ?? false,
      default: property.default,
      description: property.description ?? property.items?.description,
    },
    ...(property.type === 'array' && property.items?.properties
      ? propertiesOf(property.items, `${prefix}${name}[].`)
      : []),
  ]);
}

const showDefault = (value: unknown) => (value === '' ? '`""`' : code(showValue(value)));

const yesNo = (flag: boolean) => (flag ? 'yes' : 'no');

function toolsTable(): string {
  return table(
    ['tool', 'what it does', 'arguments', 'read-only', 'destructive', 'idempotent', 'needs'],
    TOOLS.map((tool) => {
      const args = argumentsOf(tool.input);
      return [
        code(tool.name),
        quoteNames(firstSentence(tool.description)),
        args.length === 0
          ? 'none'
          : args
              .filter((arg) => !arg.name.includes('.'))
              .map((arg) => code(arg.name))
              .join(', '),
        yesNo(tool.annotations.readOnlyHint),
        yesNo(tool.annotations.destructiveHint),
        yesNo(tool.annotations.idempotentHint),
        tool.requires ?? 'none',
      ];
    }),
  );
}

/** Each tool's whole description and its arguments, as a list (too long for table cells). */
function toolReference(): string {
  const blocks = TOOLS.map((tool) => {
    const answer =
      tool.kind === 'content'
        ? 'Answers with content blocks only (no `structuredContent`).'
        : 'Answers with `structuredContent` and text derived from it.';
    const about = quoteNames(tool.description);
    const lines = [wrap(`**${code(tool.name)}** (${tool.title}). ${about} ${answer}`, '- ', '  ')];
    for (const arg of argumentsOf(tool.input)) {
      const facts = [arg.type, arg.required ? 'required' : null];
      if (arg.default !== undefined) facts.push(`default ${showDefault(arg.default)}`);
      const about = arg.description ? `: ${quoteNames(arg.description)}` : '';
      lines.push(wrap(`${code(arg.name)} (${facts.filter(Boolean).join(', ')})${about}`, '  - ', '    '));
    }
    return lines.join('\n');
  });
  return blocks.join('\n');
}

// ---------------------------------------------------------------------------------------------
// (4) The metrics (src/ops/metrics.ts).

const DEFAULT_METRIC = /^(process|nodejs)_/;

async function metricsJson() {
  const metrics = new Metrics({ version: 'x', commit: 'x', memoryLimitBytes: null }, true);
  const all = await metrics.registry.getMetricsAsJSON();
  return all.map((metric) => {
    const instrument = metrics.registry.getSingleMetric(metric.name) as unknown as
      | { labelNames?: readonly string[] }
      | undefined;
    return { ...metric, labelNames: (instrument?.labelNames ?? []).filter((label) => label !== 'le') };
  });
}

async function metricsTable(): Promise<string> {
  const all = await metricsJson();
  const own = all.filter((metric) => !DEFAULT_METRIC.test(metric.name));
  const rows = own.map((metric) => [
    code(metric.name),
    String(metric.type),
    metric.labelNames.map(code).join(', '),
    quoteNames(metric.help),
  ]);
  // Which default metrics prom-client registers depends on the platform (file descriptors are
  // Linux-only, for one), so they are named by family, not listed.
  const families = [...new Set(all.map((metric) => DEFAULT_METRIC.exec(metric.name)?.[1]).filter(Boolean))];
  const note =
    families.length === 0
      ? ''
      : `\n\nAlso registered: prom-client's default metrics, ${families.map((family) => code(`${family}_*`)).join(' and ')}.`;
  return `${table(['metric', 'type', 'labels', 'help'], rows)}${note}`;
}

// ---------------------------------------------------------------------------------------------
// Regions

export interface Region {
  /** Where the content comes from, named in the note at the top of the region. */
  readonly source: string;
  readonly render: () => string | Promise<string>;
}

export function regions(): Map<string, Region> {
  const map = new Map<string, Region>();
  const config = configRows();
  for (const [section, rows] of config) {
    map.set(`config-${section}`, { source: 'src/config/schema.ts', render: () => configTable(rows) });
  }
  map.set('errors', { source: 'src/errors.ts', render: errorsTable });
  map.set('tools', { source: 'src/mcp/tools (TOOLS)', render: toolsTable });
  map.set('tool-reference', { source: 'src/mcp/tools (TOOLS)', render: toolReference });
  map.set('metrics', { source: 'src/ops/metrics.ts', render: metricsTable });
  return map;
}

/** Every region rendered: name -> the text between its markers. */
export async function renderRegions(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, region] of regions()) {
    const note = `<!-- Written by \`npm run docs\` from ${region.source}; edit the source, not this. -->`;
    out.set(name, `\n${note}\n\n${(await region.render()).trimEnd()}\n\n`);
  }
  return out;
}

/** A marker is a line of its own, so that a page can quote one in running text. */
const MARKER = /^<!-- generated:([A-Za-z0-9_.-]+):(start|end) -->$/gm;

/**
 * Rewrites every generated region of a document. Throws on an unknown region name, a start
 * without its end, or regions that nest or overlap.
 */
export function applyRegions(
  text: string,
  rendered: ReadonlyMap<string, string>,
  file: string,
): { text: string; names: string[] } {
  const names: string[] = [];
  let out = '';
  let last = 0;
  let open: { name: string; end: number } | null = null;
  for (const match of text.matchAll(MARKER)) {
    const [marker, name = '', kind] = match;
    const index = match.index ?? 0;
    if (kind === 'start') {
      if (open) throw new Error(`${file}: region ${name} starts inside region ${open.name}`);
      if (!rendered.has(name)) throw new Error(`${file}: unknown generated region "${name}"`);
      open = { name, end: index + marker.length };
    } else {
      if (!open || open.name !== name) throw new Error(`${file}: region ${name} ends without its start`);
      out += text.slice(last, open.end) + rendered.get(name);
      last = index;
      names.push(name);
      open = null;
    }
  }
  if (open) throw new Error(`${file}: region ${open.name} has no end marker`);
  return { text: out + text.slice(last), names };
}
