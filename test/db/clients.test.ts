import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../helpers/audit.js';
import { modernHttpClient, modernStdioClient, v1HttpClient, v1StdioClient } from '../helpers/clients.js';
import { attribute, type SpanReceiver, startSpanReceiver } from '../helpers/otlp.js';
import { MCPD_BIN, type ServingProcess, serveMcpd } from '../helpers/process.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * The demo database through the real SDK clients (v2 at 2026-07-28, v1 at 2025-11-25), over HTTP
 * and stdio: what a user of `npm start` sees.
 */

interface ToolAnswer {
  readonly isError?: boolean;
  readonly content: { readonly type: string; readonly text?: string }[];
  readonly structuredContent?: Record<string, unknown>;
}

type Call = (name: string, args: Record<string, unknown>) => Promise<ToolAnswer>;

let demo: Awaited<ReturnType<typeof demoCopy>>;
let serving: ServingProcess;
let auditFile: string;

beforeAll(async () => {
  demo = await demoCopy();
  auditFile = join(demo.dir, 'db-audit.log');
  serving = await serveMcpd(['--config', demo.config, '--port', '0', '--audit-file', auditFile]);
});

afterAll(async () => {
  await serving?.stop();
  await demo?.cleanup();
});

const clients: [string, () => Promise<{ call: Call; close: () => Promise<void> }>][] = [
  [
    'SDK v2 over HTTP (2026-07-28)',
    async () => {
      const client = await modernHttpClient(serving.url, 'db-v2-http');
      return {
        call: (name, args) => client.callTool({ name, arguments: args }) as Promise<ToolAnswer>,
        close: () => client.close(),
      };
    },
  ],
  [
    'SDK v1 over HTTP (2025-11-25)',
    async () => {
      const client = await v1HttpClient(serving.url, 'db-v1-http');
      return {
        call: (name, args) => client.callTool({ name, arguments: args }) as Promise<ToolAnswer>,
        close: () => client.close(),
      };
    },
  ],
  [
    'SDK v2 over stdio',
    async () => {
      const client = await modernStdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
      return {
        call: (name, args) => client.callTool({ name, arguments: args }) as Promise<ToolAnswer>,
        close: () => client.close(),
      };
    },
  ],
  [
    'SDK v1 over stdio',
    async () => {
      const client = await v1StdioClient(process.execPath, [MCPD_BIN, 'stdio', '--config', demo.config]);
      return {
        call: (name, args) => client.callTool({ name, arguments: args }) as Promise<ToolAnswer>,
        close: () => client.close(),
      };
    },
  ],
];

describe.each(clients)('the demo database through the %s client', (_name, connect) => {
  let client: Awaited<ReturnType<typeof connect>>;
  beforeAll(async () => {
    client = await connect();
  });
  afterAll(async () => client?.close());

  it('lists the database with its policy', async () => {
    const answer = await client.call('list_databases', {});
    expect(answer.isError).toBeFalsy();
    const [shop] = (answer.structuredContent as { databases: { name: string; policy: { exclude: string[] } }[] })
      .databases;
    expect(shop?.name).toBe('shop');
    expect(shop?.policy.exclude).toEqual(expect.arrayContaining(['*password*', '*token*', 'customers.email']));
  });

  it('describes the visible tables and columns only', async () => {
    const answer = await client.call('describe_database', { database: 'shop' });
    const tables = (answer.structuredContent as { tables: { name: string; columns: { name: string }[] }[] }).tables;
    expect(tables.map((table) => table.name).sort()).toEqual([
      'customers',
      'order_items',
      'order_totals',
      'orders',
      'products',
    ]);
    const customers = tables.find((table) => table.name === 'customers');
    expect(customers?.columns.map((column) => column.name)).toEqual(['id', 'name', 'city', 'created_at']);
    expect(JSON.stringify(answer)).not.toMatch(/password_hash|api_tokens|email/);
  });

  it('runs a query with bound parameters, structured and as a text table', async () => {
    const answer = await client.call('query', {
      database: 'shop',
      sql: 'SELECT name, city FROM customers WHERE city = ? ORDER BY name',
      params: ['Lisbon'],
    });
    expect(answer.isError).toBeFalsy();
    expect(answer.structuredContent).toMatchObject({
      columns: ['name', 'city'],
      rows: [
        ['Ada', 'Lisbon'],
        ['Margaret', 'Lisbon'],
      ],
      rowCount: 2,
      truncated: null,
      tables: ['customers'],
    });
    expect(answer.content[0]?.text).toBe('name | city\nAda | Lisbon\nMargaret | Lisbon\n(2 rows)');
  });

  it('refuses a statement that reads an excluded column, before it runs', async () => {
    const answer = await client.call('query', { database: 'shop', sql: 'SELECT * FROM customers' });
    expect(answer.isError).toBe(true);
    expect(answer.content[0]?.text).toMatch(
      /^QUERY_REFUSED: the statement reads a column of customers that is not visible/,
    );
    expect(answer.content[0]?.text).not.toMatch(/password|email/);
  });
});

describe('the audit of database statements', () => {
  it('writes one line per statement, with its fingerprint and never its parameters', async () => {
    const client = await modernHttpClient(serving.url, 'db-audited');
    await client.callTool({
      name: 'query',
      arguments: {
        database: 'shop',
        sql: "SELECT name FROM customers WHERE city = ? AND name <> 'Zed'",
        params: ['Oslo'],
      },
    });
    await client.callTool({ name: 'query', arguments: { database: 'shop', sql: 'SELECT token FROM api_tokens' } });
    await client.close();
    // The answer can arrive before its record is written (sinks are asynchronous).
    const records = await waitForAudit(auditFile, (record) => record.client === 'db-audited', 2);
    expect(records).toHaveLength(2);
    const [allowed, denied] = records;
    expect(allowed).toMatchObject({
      op: 'query',
      decision: 'allow',
      outcome: 'ok',
      tool: 'query',
      requested: 'SELECT name FROM customers WHERE city=?AND name<>?;',
      database: {
        name: 'shop',
        tables: ['customers'],
        rows: 2,
        fingerprint: 'SELECT name FROM customers WHERE city=?AND name<>?;',
      },
    });
    expect(allowed?.database?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(denied).toMatchObject({ op: 'query', decision: 'deny', outcome: 'denied', rule: 'exclude:*token*' });
    expect(JSON.stringify(records)).not.toMatch(/Oslo|Zed|never-shown/);
  });
});

describe('db:// resources', () => {
  it('lists one per visible table, reads its schema and a sample, and hides the rest as not found', async () => {
    const client = await modernHttpClient(serving.url, 'db-resources');
    const { resources } = await client.listResources();
    const tables = resources.filter((resource) => resource.uri.startsWith('db://')).map((resource) => resource.uri);
    expect(tables.sort()).toEqual([
      'db://shop/customers',
      'db://shop/order_items',
      'db://shop/order_totals',
      'db://shop/orders',
      'db://shop/products',
    ]);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate)).toContain('db://shop/{table}');

    const read = await client.readResource({ uri: 'db://shop/customers' });
    const [content] = read.contents as { uri: string; mimeType?: string; text: string }[];
    expect(content?.mimeType).toBe('application/json');
    const value = JSON.parse(content?.text ?? '{}') as {
      columns: { name: string }[];
      sample: { columns: string[]; rows: unknown[][] };
    };
    expect(value.columns.map((column) => column.name)).toEqual(['id', 'name', 'city', 'created_at']);
    expect(value.sample.columns).toEqual(['id', 'name', 'city', 'created_at']);
    expect(value.sample.rows.length).toBeGreaterThan(0);
    expect(content?.text).not.toMatch(/argon2|@example\.com/);

    for (const hidden of ['db://shop/api_tokens', 'db://shop/sqlite_schema', 'db://nope/customers', 'db://shop']) {
      await expect(client.readResource({ uri: hidden }), hidden).rejects.toThrow(/not found or not permitted/);
    }
    await client.close();
  });
});

describe('database statements in traces', () => {
  let tracedDemo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let receiver: SpanReceiver;

  beforeAll(async () => {
    process.env.OTEL_BSP_SCHEDULE_DELAY = '200';
    receiver = await startSpanReceiver();
    tracedDemo = await demoCopy();
    server = await startServer(
      await tracedDemo.configWith('traced.yaml', `tracing: { enabled: true, endpoint: "${receiver.url}" }\n`),
    );
  });
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
    await tracedDemo?.cleanup();
  });

  it('records each statement as a span inside its call, with its fingerprint and never its literals', async () => {
    const client = await modernHttpClient(server.url, 'db-traced');
    await client.callTool({
      name: 'query',
      arguments: { database: 'shop', sql: "SELECT name FROM customers WHERE city = 'Kyoto' AND id > ?", params: [0] },
    });
    await client.close();
    const span = await until(() => receiver.spans.find((candidate) => candidate.name === 'mcpd.db shop'), {
      what: 'the statement span',
      describe: () => receiver.spans.map((candidate) => candidate.name).join(', '),
    });
    expect(attribute(span, 'db.system.name')).toBe('sqlite');
    expect(attribute(span, 'db.query.text')).toBe('SELECT name FROM customers WHERE city=?AND id>?;');
    expect(attribute(span, 'db.response.returned_rows')).toBe(2);
    // The call's span ends after the statement's, so it may reach the receiver in a later batch.
    const call = await until(
      () =>
        receiver.spans.find((candidate) => candidate.traceId === span.traceId && candidate.parentSpanId === undefined),
      {
        what: 'the root span of the call',
        describe: () => receiver.spans.map((candidate) => candidate.name).join(', '),
      },
    );
    expect(call.name).toMatch(/tools\/call/);
    expect(JSON.stringify(receiver.spans)).not.toContain('Kyoto');
  });
});
