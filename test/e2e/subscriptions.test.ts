import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modernHttpClient } from '../helpers/clients.js';
import { messagesOf, postModern } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

describe('change notifications over HTTP (subscriptions/listen)', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;

  beforeAll(async () => {
    demo = await demoCopy();
    server = await startServer(demo.config);
  });
  afterAll(async () => {
    await server?.close();
    await demo?.cleanup();
  });

  it('watches only while someone listens, and tells listeners about visible changes only', async () => {
    const { changes } = server.app;
    expect(changes.watching).toBe(false);
    const client = await modernHttpClient(server.url, 'listener');
    const readme = `file://${demo.project}/README.md`;
    const env = `file://${demo.project}/.env`;
    // A file changed last, as a marker: see below.
    const marker = `file://${demo.project}/docs/architecture.md`;
    const updates: string[] = [];
    let listChanged = 0;
    client.setNotificationHandler('notifications/resources/updated', (n) => {
      updates.push(n.params.uri);
    });
    client.setNotificationHandler('notifications/resources/list_changed', () => {
      listChanged += 1;
    });
    const subscription = await client.listen({
      resourceSubscriptions: [readme, env, marker],
      resourcesListChanged: true,
    });
    expect(changes.watching).toBe(true);
    await changes.whenWatching();

    // A change through a tool (another client) and a change on disk both reach the listener.
    const writer = await modernHttpClient(server.url, 'writer');
    await writer.callTool({ name: 'write_file', arguments: { path: 'workspace/created.md', content: 'new\n' } });
    await appendFile(join(demo.project, 'README.md'), '\nchanged on disk\n');
    await appendFile(join(demo.project, '.env'), 'LEAK=1\n');
    await writeFile(join(demo.project, 'secrets/another.key'), 'k');
    await until(() => updates.includes(readme) && listChanged > 0, {
      what: 'the update of README.md and a list change',
      describe: () => JSON.stringify({ updates, listChanged }),
    });
    // An update for .env, had one been sent, would come before the marker's: the file changed
    // before the marker did, and the events of one stream arrive in order.
    await appendFile(join(demo.project, 'docs/architecture.md'), '\nthe marker\n');
    await until(() => updates.includes(marker), {
      what: 'the update of the marker file',
      describe: () => JSON.stringify(updates),
    });
    expect(updates).toContain(readme);
    expect(updates).not.toContain(env);
    expect(listChanged).toBeGreaterThanOrEqual(1);
    expect(await readFile(join(demo.project, 'workspace/created.md'), 'utf8')).toBe('new\n');

    await subscription.close();
    await writer.close();
    await client.close();
    await until(() => !changes.watching, { what: 'the watcher to stop', timeoutMs: 5000 });
    expect(changes.watching).toBe(false);
  });

  it('lists resources lazily, page by page, and offers one template per root and per database', async () => {
    const client = await modernHttpClient(server.url, 'resource-lister');
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((t) => [t.name, t.uriTemplate])).toEqual([
      ['MCP Demo Project', `file://${demo.project}/{+path}`],
      ['Shared Templates', `file://${demo.templates}/{+path}`],
      ['shop', 'db://shop/{table}'],
    ]);
    const { resources } = await client.listResources();
    const names = resources.map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining(['README.md', 'docs/architecture.md', 'data/sales.csv']));
    for (const hidden of ['.env', 'credentials.json', 'secrets/server.key', 'src/index.ts'])
      expect(names).not.toContain(hidden);
    // Small pages: every resource exactly once, in a stable order, across both roots.
    const paged = await startServer(await demo.configWith('paged.yaml', 'resources:\n  pageSize: 3\n'));
    const collected: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      // Raw requests: the SDK client would aggregate the pages for us and hide the paging.
      const [message] = await messagesOf(await postModern(paged.url, 'resources/list', cursor ? { cursor } : {}));
      const page = message?.result as { resources: { uri: string }[]; nextCursor?: string };
      expect(page.resources.length).toBeLessThanOrEqual(3);
      collected.push(...page.resources.map((r) => r.uri));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBeGreaterThan(3);
    expect(collected).toEqual(resources.map((r) => r.uri));
    await paged.close();
    const read = await client.readResource({ uri: `file://${demo.templates}/service.yaml` });
    expect(read.contents[0]).toMatchObject({
      mimeType: expect.stringContaining('yaml'),
      text: expect.stringContaining('kind: Service'),
    });
    await client.close();
  });
});
