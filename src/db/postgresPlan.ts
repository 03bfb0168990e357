import { ColumnReads, type PlanRefusal, type Touched } from './types.js';

/**
 * What a PostgreSQL statement touches, read from its plan (`EXPLAIN (VERBOSE, FORMAT JSON)`),
 * never from its text: every relation a node scans (views are expanded to the tables they read),
 * and every column of one that any expression of the plan references. VERBOSE plans name each
 * column as `alias.column` with an alias unique in the plan, so a column is read when its scan's
 * alias qualifies it anywhere (an output, a filter, an index or join condition, a sort key); a
 * whole-row reference (`alias.*`) reads them all. Writes (a ModifyTable node, even inside a CTE),
 * row locks and function scans outside a short list are refused.
 */

interface PlanNode {
  readonly 'Node Type'?: string;
  readonly 'Relation Name'?: string;
  readonly Schema?: string;
  readonly Alias?: string;
  readonly 'Function Name'?: string;
  readonly Plans?: readonly PlanNode[];
  readonly [key: string]: unknown;
}

/** Set-returning functions a statement may scan: they read nothing but their arguments. */
const SCANNABLE_FUNCTIONS = new Set([
  'generate_series',
  'unnest',
  'json_array_elements',
  'json_array_elements_text',
  'jsonb_array_elements',
  'jsonb_array_elements_text',
  'json_each',
  'json_each_text',
  'jsonb_each',
  'jsonb_each_text',
  'json_to_recordset',
  'jsonb_to_recordset',
  'regexp_matches',
  'regexp_split_to_table',
]);

/**
 * Functions refused wherever a plan calls them, behind the role's own privileges (which the docs
 * require to be read-only): ones that act on other sessions, the server, its files, large
 * objects, sequences, locks or other servers, even where a plain role may call them (a role may
 * end its own sessions: every replica's, when they share it).
 */
const REFUSED_FUNCTIONS =
  /^(?:pg_catalog\.)?(?:pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|set_config|pg_advisory\w*|pg_try_advisory\w*|dblink\w*|lo_\w+|loread|lowrite|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|pg_notify|nextval|setval|currval|lastval|txid_\w+|pg_current_xact_id\w*|pg_create_\w+|pg_drop_\w+|pg_replication_\w+|pg_logical_\w+|pg_switch_wal|pg_backup_\w+|pg_promote|pg_log_backend_memory_contexts|pg_file_\w+|pg_import_system_collations)$/i;

/** Keys whose strings name things rather than hold expressions. */
const NAMES = new Set(['Node Type', 'Relation Name', 'Schema', 'Alias', 'Index Name', 'Function Name', 'CTE Name']);

/** A column as a VERBOSE plan writes it after its alias: a plain name, a quoted one, or `*`. */
const COLUMN = String.raw`("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*|\*)`;

/** `alias.column` in a deparsed expression: the alias plain or quoted, not itself qualified. */
const QUALIFIED = new RegExp(String.raw`(?<![\w$."])("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\.` + COLUMN, 'g');

function quoteIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name;
}

/** String literals of a deparsed expression removed, so that text inside them is never taken for a column. */
function withoutLiterals(text: string): string {
  return text.replace(/'(?:[^']|'')*'/g, "''");
}

/** The relations a plan scans, by the name the policy knows them (`relation`, or `schema.relation` elsewhere). */
export function relationsOf(plan: unknown, schema: string): Set<string> {
  const found = new Set<string>();
  const nodes: PlanNode[] = [...((plan as readonly { Plan?: PlanNode }[] | undefined) ?? [])]
    .map((entry) => entry.Plan)
    .filter((node): node is PlanNode => node !== undefined);
  while (nodes.length > 0) {
    const node = nodes.pop() as PlanNode;
    if (node['Relation Name'] !== undefined) found.add(nameOf(node, schema));
    nodes.push(...(node.Plans ?? []));
  }
  return found;
}

function nameOf(node: PlanNode, schema: string): string {
  const relation = node['Relation Name'] as string;
  const owner = node.Schema ?? schema;
  return owner === schema ? relation : `${owner}.${relation}`;
}

/** Words of a deparsed expression that are never a column: its operators and constants. */
const KEYWORDS = new Set([
  'and',
  'or',
  'not',
  'null',
  'true',
  'false',
  'case',
  'when',
  'then',
  'else',
  'end',
  'is',
  'in',
  'like',
  'ilike',
  'any',
  'all',
  'some',
  'array',
  'row',
  'distinct',
  'from',
  'as',
  'between',
  'similar',
  'to',
  'escape',
  'collate',
  'asc',
  'desc',
  'nulls',
  'first',
  'last',
  'using',
  'filter',
  'where',
  'over',
  'partition',
  'by',
  'order',
]);

/**
 * Parents above which a scan's whole-tuple output (a physical target list) is no read: each names
 * what it uses of it in its own expressions and output, with the scan's alias, and those are
 * analysed. Not a Subquery Scan, a CTE Scan or an Append: their outputs name columns by another
 * alias, so there the scan's output counts.
 */
const COMPUTING_PARENTS = new Set([
  'Aggregate',
  'Group',
  'WindowAgg',
  'Hash',
  'Hash Join',
  'Nested Loop',
  'Merge Join',
  'Sort',
  'Incremental Sort',
  'Materialize',
  'Memoize',
  'Unique',
  'Limit',
  'Gather',
  'Gather Merge',
]);

/**
 * `plan` is the JSON EXPLAIN gives (an array of one object with `Plan`); `schema` the schema whose
 * relations are named bare (others are `schema.relation`); `columnsOf` the columns of each
 * relation the plan scans, in order.
 *
 * A column counts as read wherever it is referenced: qualified by its scan's alias, or bare where
 * the plan names it so (a plan over one relation, or a scan's own expressions). One exception
 * keeps `count(*)` on a table with a hidden column possible: a scan under an aggregate that
 * outputs its whole tuple, column by column, reads nothing by that (the aggregate's own
 * expressions, analysed too, say what it computes from).
 */
export function analysePostgres(
  plan: unknown,
  schema: string,
  columnsOf: ReadonlyMap<string, readonly string[]>,
): Touched | PlanRefusal {
  const root = (plan as readonly { Plan?: PlanNode }[] | undefined)?.[0]?.Plan;
  if (!root) return { rule: 'sql:unplanned', reason: 'the database gave no plan for the statement' };
  const aliases = new Map<string, string>();
  const functions = new Set<string>();
  // Each expression with the relation its bare names belong to (when that is certain).
  const expressions: { text: string; scope: string | undefined }[] = [];
  const nodes: { node: PlanNode; parent: string | undefined }[] = [{ node: root, parent: undefined }];
  const visited: typeof nodes = [];
  while (nodes.length > 0) {
    const entry = nodes.pop() as (typeof nodes)[number];
    const { node } = entry;
    const type = node['Node Type'] ?? '';
    if (type === 'ModifyTable') return { rule: 'sql:write', reason: 'the statement would write' };
    if (type === 'LockRows') return { rule: 'sql:write', reason: 'the statement would lock rows (FOR UPDATE/SHARE)' };
    if (type === 'Function Scan' || type === 'Table Function Scan') {
      const name = (node['Function Name'] ?? '').toLowerCase();
      if (!SCANNABLE_FUNCTIONS.has(name)) {
        return { rule: 'sql:function', reason: `the function ${name || '(unnamed)'} may not be scanned` };
      }
      functions.add(name);
    }
    if (node['Relation Name'] !== undefined)
      aliases.set(node.Alias ?? (node['Relation Name'] as string), nameOf(node, schema));
    visited.push(entry);
    for (const child of node.Plans ?? []) nodes.push({ node: child, parent: type });
  }
  const only = new Set(aliases.values()).size === 1 ? [...aliases.values()][0] : undefined;
  for (const { node, parent } of visited) {
    const own = node['Relation Name'] !== undefined ? nameOf(node, schema) : only;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Plans' || NAMES.has(key)) continue;
      const texts =
        typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v) => typeof v === 'string') : [];
      if (key === 'Output' && own !== undefined && parent !== undefined && COMPUTING_PARENTS.has(parent)) {
        const whole = columnsOf.get(own);
        const alias = quoteIdentifier(node.Alias ?? (node['Relation Name'] as string));
        const physical = (text: unknown, i: number) => {
          const column = quoteIdentifier(whole?.[i] as string);
          return text === column || text === `${alias}.${column}`;
        };
        if (whole && texts.length === whole.length && texts.every(physical)) continue;
      }
      for (const text of texts) expressions.push({ text: withoutLiterals(text as string), scope: own });
    }
  }
  for (const { text } of expressions) {
    for (const call of text.matchAll(/([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)?)\s*\(/g)) {
      if (REFUSED_FUNCTIONS.test(call[1] as string)) {
        return { rule: 'sql:function', reason: `the function ${call[1]} is not allowed` };
      }
    }
  }
  const columns = new ColumnReads();
  const read = (table: string, column: string) => columns.read(table, column);
  const knownColumns = new Map<string, Set<string>>();
  for (const { text, scope } of expressions) {
    // One pass per expression whatever the number of relations: every `name.column`, kept when
    // `name` is a scan's alias (a statement's own input never makes this quadratic).
    for (const match of text.matchAll(QUALIFIED)) {
      const table = aliases.get(unquote(match[1] as string));
      if (table !== undefined) read(table, unquote(match[2] as string));
    }
    if (scope === undefined) continue;
    // Bare names: a word (or quoted name) not qualified, not a function, not a type after ::.
    let known = knownColumns.get(scope);
    if (!known) {
      known = new Set(columnsOf.get(scope) ?? []);
      knownColumns.set(scope, known);
    }
    for (const match of text.matchAll(
      /(?<![\w$."]|::|\.)("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?![\w$"]*\s*[(.])/g,
    )) {
      const word = match[1] as string;
      const name = unquote(word);
      if (known.has(name) && (word.startsWith('"') || !KEYWORDS.has(name.toLowerCase()))) read(scope, name);
    }
  }
  return { tables: new Set(aliases.values()), columns, functions };
}
