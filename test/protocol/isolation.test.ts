import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, truncate, writeFile } from 'node:fs/promises';
import { Agent, type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.js';
import { readAudit } from '../helpers/audit.js';
import { modernRequest } from '../helpers/raw.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { demoCopy } from '../helpers/workspace.js';

/**
 * Isolation between requests. The hot requests are answered on the fast path straight from the
 * parsed body, the rest by the SDK's reference handler, which finds its request's context in
 * async-local storage: nothing of one request may reach another. One server, two principals whose
 * grants do not overlap (alice reads only the project root, bob only the templates root), and a
 * few hundred interleaved requests of both eras over real loopback HTTP, nearly all with the
 * JSON-RPC id 1, so a response, a progress notification or a cancellation routed by id would land
 * on the wrong request. Every request names files or arguments holding nonces of its own; an answer
 * must carry its own nonces and none of anyone else's.
 */

type RequestId = string | number;

interface Who {
  readonly name: 'alice' | 'bob';
  readonly key: string;
  readonly root: string;
  /** The root's directory in the workspace copy. */
  readonly dir: string;
}

interface Message {
  readonly id?: RequestId;
  readonly method?: string;
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: { code: number; message: string; data?: unknown };
}

interface Sent {
  readonly headers: Record<string, string>;
  readonly body: string;
}

const PROJECT = 'MCP Demo Project';
const TEMPLATES = 'Shared Templates';
/** Every load request of both principals sends this User-Agent: only principal and id tell them apart. */
const LOAD_UA = 'iso-load';
const PROGRESS = 'notifications/progress';
/** Long enough that no call over it can end before the test ends it (a full pass takes minutes). */
const HELD_BYTES = 1024 * 1024 * 1024;
const NONCE = /Q[0-9a-f]{12}Q/g;
const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const nonce = () => `Q${randomBytes(6).toString('hex')}Q`;
const b64Name = (name: string) => `=?base64?${Buffer.from(name).toString('base64')}?=`;

const isResponse = (m: Message) => 'result' in m || 'error' in m;
const errorCode = (result: Record<string, unknown> | undefined) =>
  (result?._meta as { 'dev.mcpd/error'?: { code?: string } } | undefined)?.['dev.mcpd/error']?.code;
const structured = <T>(m: Message | undefined) => m?.result?.structuredContent as T;
const textOf = (m: Message | undefined) =>
  ((m?.result?.content as { text?: string }[] | undefined) ?? []).map((c) => c.text ?? '').join('\n');

/** A 2026-07-28 request: the `_meta` envelope and the standard headers. */
function modern(
  who: Who,
  method: string,
  params: Record<string, unknown>,
  options: { meta?: Record<string, unknown>; headers?: Record<string, string>; id?: RequestId } = {},
): Sent {
  const { headers, body } = modernRequest(method, params, {
    id: options.id ?? 1,
    client: `iso-${who.name}`,
    ...(options.meta ? { meta: options.meta } : {}),
  });
  return {
    headers: { ...headers, authorization: `Bearer ${who.key}`, 'user-agent': LOAD_UA, ...options.headers },
    body,
  };
}

/** A 2025-era stateless request (no session); `id: null` makes it a notification. */
function legacy(
  who: Who,
  method: string,
  params: Record<string, unknown>,
  options: { meta?: Record<string, unknown>; id?: RequestId | null; ua?: string } = {},
): Sent {
  return {
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${who.key}`,
      'user-agent': options.ua ?? LOAD_UA,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      ...(options.id === null ? {} : { id: options.id ?? 1 }),
      method,
      params: options.meta ? { ...params, _meta: options.meta } : params,
    }),
  };
}

/**
 * One POST to /mcp over node:http, its answer parsed as it arrives (JSON, or SSE event by event),
 * so a test can wait for a message, stop reading (backpressure reaches the tool), or hang up.
 */
class Exchange {
  status = 0;
  requestId = '';
  raw = '';
  readonly messages: Message[] = [];
  ended = false;
  readonly done: Promise<void>;
  private readonly request: ClientRequest;
  private response: IncomingMessage | undefined;
  private streaming = false;
  private pending = '';

  constructor(
    readonly sent: Sent,
    agent: Agent,
    url: string,
    private readonly onMessage?: (message: Message, exchange: Exchange) => void,
  ) {
    let finish: () => void = () => {};
    this.done = new Promise((resolve) => {
      finish = resolve;
    });
    const end = () => {
      if (this.ended) return;
      this.ended = true;
      if (!this.streaming && this.raw.length > 0) {
        try {
          this.take(JSON.parse(this.raw) as Message);
        } catch {
          // Not JSON: the checks report the raw answer.
        }
      }
      finish();
    };
    this.request = httpRequest(url, { method: 'POST', agent, headers: sent.headers }, (res) => {
      this.response = res;
      this.status = res.statusCode ?? 0;
      this.requestId = String(res.headers['x-request-id'] ?? '');
      this.streaming = String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.raw += chunk;
        if (this.streaming) this.parseEvents(chunk);
      });
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
    });
    this.request.on('error', end);
    this.request.end(sent.body);
  }

  private parseEvents(chunk: string): void {
    this.pending += chunk;
    for (let cut = this.pending.indexOf('\n\n'); cut >= 0; cut = this.pending.indexOf('\n\n')) {
      const event = this.pending.slice(0, cut);
      this.pending = this.pending.slice(cut + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (data) this.take(JSON.parse(data) as Message);
    }
  }

  private take(message: Message): void {
    this.messages.push(message);
    this.onMessage?.(message, this);
  }

  /** Stops reading: the server's buffers fill and the tool waits for room before its next notification. */
  hold(): void {
    this.response?.pause();
  }

  resume(): void {
    this.response?.resume();
  }

  /** Hangs up mid-answer: how a 2026-07-28 client cancels. */
  close(): void {
    this.request.destroy();
  }

  /** Waits for a message; fails at once if the answer ends without one. */
  async waitFor(what: string, predicate: (m: Message) => boolean): Promise<void> {
    await until(
      () => {
        if (this.messages.some(predicate)) return true;
        if (this.ended) throw new Error(`${what}: the answer ended without it: ${this.raw.slice(0, 500)}`);
        return false;
      },
      { what, describe: () => this.raw.slice(-500) },
    );
  }
}

/** One request of the load, and what its answer must be. */
interface Case {
  readonly label: string;
  readonly who: Who;
  readonly route: 'fast' | 'reference';
  readonly sent: Sent;
  readonly status: number;
  /** Nonces the answer must carry: only this request's own files and arguments hold them. */
  readonly own: readonly string[];
  /** Nonces the answer may carry besides: what the request itself named, echoed back. */
  readonly may: readonly string[];
  /** A listing of the principal's files: it may name any file of this principal, and no other. */
  readonly listsOwnFiles?: true;
  readonly progress?: { readonly token: string | number; readonly total: number };
  /** Whether the request leaves audit records (a file access, a handshake). */
  readonly audited: 'always' | 'never' | 'maybe';
  readonly check?: (final: Message | undefined) => void;
  readonly checkAudit?: (records: AuditRecord[]) => void;
}

describe('isolation: nothing of one request reaches another', () => {
  let demo: Awaited<ReturnType<typeof demoCopy>>;
  let server: TestServer;
  let alice: Who;
  let bob: Who;
  const logs: Record<string, unknown>[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 96 });
  const files = new Map<string, string>();
  /** Which request each nonce belongs to, to name the owner when one turns up elsewhere. */
  const owners = new Map<string, string>();
  const cases: Case[] = [];
  const answers = new Map<Case, Exchange>();

  const rel = (who: Who, name: string) => `iso/${who.name}-${name}`;
  const abs = (who: Who, path: string) => join(who.dir, path);
  const uri = (who: Who, path: string) => `file://${abs(who, path)}`;
  const exchange = (sent: Sent, onMessage?: (m: Message, e: Exchange) => void) =>
    new Exchange(sent, agent, server.url, onMessage);

  function mint(owner: string): string {
    const value = nonce();
    owners.set(value, owner);
    return value;
  }

  /** A markdown file of `who` holding a content nonce: its path nonce names it, its content nonce is its secret. */
  function mdFile(who: Who, label: string) {
    const pn = mint(label);
    const cn = mint(`${label} (contents)`);
    const path = `${rel(who, pn)}.md`;
    files.set(abs(who, path), `owner ${who.name}\n${cn}\n`);
    return { pn, cn, path };
  }

  let rows = 1000;
  /** A CSV of a size no other file has, so a progress notification names its stream by its total too. */
  function csvFile(who: Who, label: string) {
    const pn = mint(label);
    rows += 1;
    const path = `${rel(who, pn)}.csv`;
    files.set(abs(who, path), `h\n${'x,y\n'.repeat(rows)}`);
    return { pn, path, size: 2 + 4 * rows };
  }

  /**
   * Progress tokens: one of the principal's own, and three that both principals send, two of them
   * numbers and one equal to the JSON-RPC id, so only the stream a notification travels on can
   * tell whose it is.
   */
  const tokens = (who: Who, pn: string): (string | number)[] => ['tok-shared', `tok-${who.name}-${pn}`, 1, 7];

  /** The load of one principal for one round: every kind of request, in both eras where both exist. */
  function round(who: Who, other: Who, r: number): void {
    type Spec = Omit<Case, 'label' | 'who' | 'route' | 'status' | 'may'> &
      Partial<Pick<Case, 'route' | 'status' | 'may'>> & { readonly kind: string };
    const add = ({ kind, ...spec }: Spec) =>
      cases.push({ route: 'fast', status: 200, may: [], ...spec, who, label: `${who.name} r${r} ${kind}` });
    const named = (kind: string) => `${who.name} r${r} ${kind}`;
    const probed = (kind: string) => `${other.name} file probed by ${who.name} r${r} ${kind}`;
    const denied = (m: Message | undefined) => expect(errorCode(m?.result)).toBe('NOT_FOUND_OR_DENIED');
    const deniedByGrant = (records: AuditRecord[]) =>
      expect(records.map((x) => [x.decision, x.rule])).toEqual([['deny', 'grant:none']]);

    for (const era of ['modern', 'legacy'] as const) {
      const send = (method: string, params: Record<string, unknown>, meta?: Record<string, unknown>) =>
        era === 'modern' ? modern(who, method, params, meta ? { meta } : {}) : legacy(who, method, params, { meta });
      const call = (name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
        send('tools/call', { name, arguments: args }, meta);

      let f = mdFile(who, named(`${era} read_file`));
      const read = f;
      add({
        kind: `${era} read_file`,
        sent: call('read_file', { path: f.path }),
        own: [f.pn, f.cn],
        audited: 'always',
        check: (m) => expect(textOf(m)).toContain(`owner ${who.name}\n${read.cn}\n`),
      });
      f = mdFile(who, named(`${era} get_file_info`));
      const info = f;
      add({
        kind: `${era} get_file_info`,
        sent: call('get_file_info', { path: f.path }),
        own: [f.pn],
        audited: 'always',
        check: (m) =>
          expect(structured(m)).toMatchObject({ uri: uri(who, info.path), root: who.root, path: info.path }),
      });
      const dir = mint(named(`${era} list_directory`));
      files.set(abs(who, `${rel(who, dir)}/inner-${dir}.txt`), 'inner\n');
      add({
        kind: `${era} list_directory`,
        sent: call('list_directory', { path: rel(who, dir) }),
        own: [dir],
        audited: 'always',
        check: (m) =>
          expect(structured<{ entries: { name: string }[] }>(m).entries.map((e) => e.name)).toEqual([
            `inner-${dir}.txt`,
          ]),
      });
      f = mdFile(who, named(`${era} search_files`));
      const found = f;
      add({
        kind: `${era} search_files`,
        sent: call('search_files', { pattern: f.pn }),
        own: [f.pn],
        audited: 'always',
        check: (m) =>
          expect(structured<{ matches: { uri: string }[] }>(m).matches.map((x) => x.uri)).toEqual([
            uri(who, found.path),
          ]),
      });
      // The include glob spares reading every file of the root, not the walk across every root.
      f = mdFile(who, named(`${era} grep`));
      const grepped = f;
      add({
        kind: `${era} grep`,
        sent: call('grep', { pattern: f.cn, include: `*-${f.pn}.md` }),
        own: [f.pn, f.cn],
        audited: 'always',
        check: (m) =>
          expect(structured<{ matches: unknown[] }>(m).matches).toEqual([
            expect.objectContaining({ root: who.root, path: grepped.path, line: 2, text: grepped.cn }),
          ]),
      });
      f = mdFile(who, named(`${era} resources/read`));
      const resource = f;
      add({
        kind: `${era} resources/read`,
        sent: send('resources/read', { uri: uri(who, f.path) }),
        own: [f.pn, f.cn],
        audited: 'always',
        check: (m) =>
          expect(m?.result?.contents).toEqual([
            expect.objectContaining({ uri: uri(who, resource.path), text: `owner ${who.name}\n${resource.cn}\n` }),
          ]),
      });
      const csv = csvFile(who, named(`${era} process_large_dataset`));
      const token = tokens(who, csv.pn)[(r + (era === 'modern' ? 0 : 1)) % 4] as string | number;
      add({
        kind: `${era} process_large_dataset (progress token ${JSON.stringify(token)})`,
        sent: call('process_large_dataset', { path: csv.path, chunkSize: 1024 }, { progressToken: token }),
        own: [csv.pn],
        progress: { token, total: csv.size },
        audited: 'always',
        check: (m) => expect(structured(m)).toMatchObject({ uri: uri(who, csv.path), bytes: csv.size }),
      });
      add({
        kind: `${era} list_roots`,
        sent: call('list_roots', {}),
        own: [],
        audited: 'never',
        check: (m) => expect(structured<{ roots: { name: string }[] }>(m).roots.map((x) => x.name)).toEqual([who.root]),
      });
      const missing = mint(named(`${era} missing file`));
      add({
        kind: `${era} read_file of a missing file`,
        sent: call('read_file', { path: `${rel(who, missing)}-missing.md` }),
        own: [],
        may: [missing],
        audited: 'always',
        check: denied,
      });

      // Probes of the other principal's files, each naming a file that exists and holds a secret.
      f = mdFile(other, probed(`${era} read_file`));
      add({
        kind: `${era} read_file of ${other.name}'s file`,
        sent: call('read_file', { path: abs(other, f.path) }),
        own: [],
        may: [f.pn],
        audited: 'always',
        check: denied,
        checkAudit: deniedByGrant,
      });
      f = mdFile(other, probed(`${era} grep`));
      add({
        kind: `${era} grep for ${other.name}'s secret`,
        sent: call('grep', { pattern: f.cn, include: `*-${f.pn}.md` }),
        own: [],
        may: [f.pn, f.cn],
        audited: 'maybe',
        check: (m) => expect(structured<{ matches: unknown[] }>(m).matches).toEqual([]),
      });
      f = mdFile(other, probed(`${era} search_files`));
      add({
        kind: `${era} search_files for ${other.name}'s file`,
        sent: call('search_files', { pattern: f.pn }),
        own: [],
        may: [f.pn],
        audited: 'maybe',
        check: (m) => expect(structured<{ matches: unknown[] }>(m).matches).toEqual([]),
      });
      f = mdFile(other, probed(`${era} resources/read`));
      const foreign = f;
      add({
        kind: `${era} resources/read of ${other.name}'s file`,
        sent: send('resources/read', { uri: uri(other, f.path) }),
        own: [],
        may: [f.pn],
        audited: 'always',
        check: (m) => expect(m?.error).toMatchObject({ code: -32602, data: { uri: uri(other, foreign.path) } }),
        checkAudit: deniedByGrant,
      });

      // The reference handler's share in both eras: what the fast path declines.
      const tool = mint(named(`${era} unknown tool`));
      add({
        kind: `${era} unknown tool`,
        route: 'reference',
        sent: call(`no_such_tool_${tool}`, {}),
        own: [tool],
        audited: 'never',
        check: (m) => expect(m?.error).toMatchObject({ code: -32602, message: `Tool no_such_tool_${tool} not found` }),
      });
      f = mdFile(who, named(`${era} invalid arguments`));
      add({
        kind: `${era} read_file with invalid arguments`,
        route: 'reference',
        sent: call('read_file', { path: f.path, offset: -1 }),
        own: [],
        may: [f.pn],
        audited: 'never',
        check: (m) => {
          expect(m?.result?.isError).toBe(true);
          expect(textOf(m)).toMatch(/^Input validation error: /);
        },
      });
    }

    // What the reference handler serves in full for a 2026-07-28 client (an encoded Mcp-Name makes
    // the fast path decline), and what it refuses.
    const encoded = (name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
      modern(
        who,
        'tools/call',
        { name, arguments: args },
        { headers: { 'mcp-name': b64Name(name) }, ...(meta ? { meta } : {}) },
      );
    const encodedRead = mdFile(who, named('encoded-name read_file'));
    add({
      kind: 'modern read_file, encoded Mcp-Name',
      route: 'reference',
      sent: encoded('read_file', { path: encodedRead.path }),
      own: [encodedRead.pn, encodedRead.cn],
      audited: 'always',
      check: (m) => expect(textOf(m)).toContain(`owner ${who.name}\n${encodedRead.cn}\n`),
    });
    const csv = csvFile(who, named('encoded-name process_large_dataset'));
    const token = tokens(who, csv.pn)[(r + 2) % 4] as string | number;
    add({
      kind: `modern process_large_dataset, encoded Mcp-Name (progress token ${JSON.stringify(token)})`,
      route: 'reference',
      sent: encoded('process_large_dataset', { path: csv.path, chunkSize: 1024 }, { progressToken: token }),
      own: [csv.pn],
      progress: { token, total: csv.size },
      audited: 'always',
      check: (m) => expect(structured(m)).toMatchObject({ uri: uri(who, csv.path), bytes: csv.size }),
    });
    const foreign = mdFile(other, probed('encoded-name read_file'));
    add({
      kind: `modern read_file of ${other.name}'s file, encoded Mcp-Name`,
      route: 'reference',
      sent: encoded('read_file', { path: abs(other, foreign.path) }),
      own: [],
      may: [foreign.pn],
      audited: 'always',
      check: denied,
      checkAudit: deniedByGrant,
    });
    const mismatch = mdFile(who, named('header mismatch'));
    add({
      kind: 'modern tools/call whose Mcp-Name disagrees with its body',
      route: 'reference',
      sent: modern(
        who,
        'tools/call',
        { name: 'read_file', arguments: { path: mismatch.path } },
        {
          headers: { 'mcp-name': `read_file_${mismatch.pn}` },
        },
      ),
      status: 400,
      own: [mismatch.pn],
      audited: 'never',
      check: (m) => expect(m?.error).toMatchObject({ code: -32020 }),
    });
    const client = mint(named('initialize'));
    add({
      kind: 'legacy initialize',
      route: 'reference',
      sent: legacy(who, 'initialize', {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: `init-${client}`, version: '1' },
      }),
      own: [],
      may: [client],
      audited: 'always',
      check: (m) => expect(m?.result).toMatchObject({ protocolVersion: '2025-11-25', serverInfo: { name: 'mcpd' } }),
      checkAudit: (records) => expect(records.map((x) => [x.op, x.client])).toEqual([['initialize', `init-${client}`]]),
    });

    add({
      kind: 'modern resources/list',
      sent: modern(who, 'resources/list', {}),
      own: [],
      listsOwnFiles: true,
      audited: 'maybe',
      check: (m) => {
        const listed = ((m?.result?.resources ?? []) as { uri: string }[]).map((x) => x.uri);
        expect(listed.length).toBeGreaterThan(0);
        expect(listed.filter((x) => !x.startsWith(`file://${who.dir}/`))).toEqual([]);
      },
    });
    add({
      kind: 'modern resources/templates/list',
      sent: modern(who, 'resources/templates/list', {}),
      own: [],
      audited: 'never',
      check: (m) =>
        expect(((m?.result?.resourceTemplates ?? []) as { name: string }[]).map((x) => x.name)).toEqual([who.root]),
    });
    add({
      kind: 'legacy tools/list',
      sent: legacy(who, 'tools/list', {}),
      own: [],
      audited: 'never',
      check: (m) => expect((m?.result?.tools as unknown[] | undefined)?.length).toBe(17),
    });
  }

  /**
   * 2025-era calls held open over a file no pass can finish, each with a cancellation aimed at it
   * or near it (src/http/cancellation.ts: by principal, User-Agent and id, and only when exactly one
   * call matches). After the cancellations are answered, every held file is truncated: a call still
   * running then ends at once with CONFLICT (its file shrank under it), while a cancelled one ends
   * CANCELLED, whatever its file did. So the code each ends with says whether a cancel reached it.
   */
  interface Held {
    readonly label: string;
    readonly who: Who;
    readonly ua: string;
    readonly id: RequestId;
    readonly token: string | number;
    readonly path: string;
    readonly size: number;
    readonly ends: 'CANCELLED' | 'CONFLICT';
  }
  const held: Held[] = [];
  const heldAnswers = new Map<Held, Exchange>();
  /** Cancellations: who sends it, with which User-Agent, naming which id. */
  const cancels: { label: string; who: Who; ua: string; id: RequestId }[] = [];
  const cancelAnswers: Exchange[] = [];
  /** 2026-07-28 calls cancelled by hanging up, on either path. */
  interface HungUp {
    readonly label: string;
    readonly who: Who;
    readonly route: 'fast' | 'reference';
    readonly token: string | number;
    readonly path: string;
    readonly size: number;
  }
  const hungUp: HungUp[] = [];
  const hungUpAnswers = new Map<HungUp, Exchange>();
  const listens = new Map<Who, Exchange>();
  const watched = (who: Who) => [uri(who, `iso/watch-${who.name}.md`), uri(who, `iso/mark-${who.name}.md`)];

  let heldSeq = 0;
  function holdFile(who: Who): { path: string; size: number } {
    heldSeq += 1;
    return { path: `${rel(who, `held-${heldSeq}`)}.csv`, size: HELD_BYTES + heldSeq * 1024 };
  }

  beforeAll(async () => {
    demo = await demoCopy();
    alice = { name: 'alice', key: 'alice-key', root: PROJECT, dir: demo.project };
    bob = { name: 'bob', key: 'bob-key', root: TEMPLATES, dir: demo.templates };
    const config = await demo.configWith(
      'isolation.yaml',
      [
        'auth:',
        '  mode: apiKeys',
        '  apiKeys:',
        `    - { principal: alice, sha256: ${sha(alice.key)} }`,
        `    - { principal: bob, sha256: ${sha(bob.key)} }`,
        'grants:',
        `  - { principals: [alice], roots: [${PROJECT}], access: [read] }`,
        `  - { principals: [bob], roots: [${TEMPLATES}], access: [read] }`,
        // Room for the whole mix at once: limits are not what this test is about.
        'limits:',
        '  maxConcurrentRequests: 2000',
        '  maxConcurrentPerPrincipal: 1000',
        '  rateLimit: { perSecond: 100000, burst: 100000 }',
        '',
      ].join('\n'),
    );

    for (let r = 0; r < 4; r++) {
      round(alice, bob, r);
      round(bob, alice, r);
    }

    // Same User-Agent and id, different principals: alice's cancel must find only her own call.
    const pair = (label: string, who: Who, ua: string, id: RequestId, token: string | number, ends: Held['ends']) =>
      held.push({ label, who, ua, id, token, ends, ...holdFile(who) });
    pair(
      'alice, cancelled by alice (bob holds the same id and User-Agent)',
      alice,
      'iso-pair-1',
      1,
      'tok-shared',
      'CANCELLED',
    );
    pair(
      "bob, same id, User-Agent and token as alice's cancelled call",
      bob,
      'iso-pair-1',
      1,
      'tok-shared',
      'CONFLICT',
    );
    cancels.push({ label: 'alice cancels id 1', who: alice, ua: 'iso-pair-1', id: 1 });
    // The other way round, with a string id: bob's cancel names alice's in-flight id too.
    pair("alice, whose id bob's cancel names", alice, 'iso-pair-2', 'held-2', 2, 'CONFLICT');
    pair('bob, cancelled by bob (alice holds the same id and User-Agent)', bob, 'iso-pair-2', 'held-2', 2, 'CANCELLED');
    cancels.push({ label: "bob cancels id 'held-2'", who: bob, ua: 'iso-pair-2', id: 'held-2' });
    // Bob names an id only alice has in flight.
    pair("alice, alone with her id, named by bob's cancel", alice, 'iso-alone', 3, 'tok-alice-alone', 'CONFLICT');
    cancels.push({ label: 'bob cancels id 3, which only alice has', who: bob, ua: 'iso-alone', id: 3 });
    // Two calls of alice with one id: ambiguous, so nothing is cancelled.
    pair('alice, first of two calls with id 4', alice, 'iso-twice', 4, 'tok-twice-a', 'CONFLICT');
    pair('alice, second of two calls with id 4', alice, 'iso-twice', 4, 'tok-twice-b', 'CONFLICT');
    cancels.push({ label: 'alice cancels id 4, which two of her calls have', who: alice, ua: 'iso-twice', id: 4 });

    for (const who of [alice, bob]) {
      hungUp.push({
        label: `${who.name} hangs up (fast path)`,
        who,
        route: 'fast',
        token: 'tok-shared',
        ...holdFile(who),
      });
      hungUp.push({
        label: `${who.name} hangs up (reference handler)`,
        who,
        route: 'reference',
        token: 1,
        ...holdFile(who),
      });
      files.set(abs(who, `iso/watch-${who.name}.md`), 'watched\n');
      files.set(abs(who, `iso/mark-${who.name}.md`), 'marker\n');
    }

    for (const [path, contents] of files) {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, contents);
    }
    // Sparse: a gigabyte that costs nothing on disk.
    for (const { who, path, size } of [...held, ...hungUp]) {
      const handle = await open(abs(who, path), 'w');
      await handle.truncate(size);
      await handle.close();
    }
    server = await startServer(config, { logLevel: 'info' }, logs);
  }, 60_000);

  afterAll(async () => {
    for (const answer of [...heldAnswers.values(), ...hungUpAnswers.values(), ...listens.values()]) answer.close();
    agent.destroy();
    await server?.close();
    await demo?.cleanup();
  });

  /** Every nonce minted for a file or request of `who` (the files in its root). */
  const noncesOf = (who: Who) =>
    [...owners.entries()].filter(([, label]) => label.startsWith(`${who.name} `)).map(([n]) => n);

  const progressOf = (e: Exchange) => e.messages.filter((m) => m.method === PROGRESS);

  /** Holds, cancels, truncates, resumes: see Held. */
  async function cancelScenario(): Promise<void> {
    for (const h of held) {
      const sent = legacy(
        h.who,
        'tools/call',
        { name: 'process_large_dataset', arguments: { path: h.path, chunkSize: 1024 } },
        { id: h.id, ua: h.ua, meta: { progressToken: h.token } },
      );
      // Holding after the first notification bounds what the call produces until the test ends it.
      let holding = false;
      heldAnswers.set(
        h,
        exchange(sent, (m, e) => {
          if (m.method !== PROGRESS || holding) return;
          holding = true;
          e.hold();
        }),
      );
    }
    // Each call is registered as cancellable before it runs: its first notification means it is in flight.
    await Promise.all(
      held.map((h) => heldAnswers.get(h)?.waitFor(`${h.label}: first progress`, (m) => m.method === PROGRESS)),
    );
    for (const c of cancels) {
      cancelAnswers.push(
        exchange(
          legacy(c.who, 'notifications/cancelled', { requestId: c.id, reason: c.label }, { id: null, ua: c.ua }),
        ),
      );
    }
    // A cancellation is applied when it arrives, before it is answered.
    await Promise.all(cancelAnswers.map((e) => e.done));
    for (const h of held) await truncate(abs(h.who, h.path), 0);
    for (const e of heldAnswers.values()) e.resume();
    await Promise.all([...heldAnswers.values()].map((e) => e.done));
  }

  async function hangUpScenario(): Promise<void> {
    for (const h of hungUp) {
      const sent = modern(
        h.who,
        'tools/call',
        { name: 'process_large_dataset', arguments: { path: h.path, chunkSize: 1024 } },
        {
          meta: { progressToken: h.token },
          ...(h.route === 'reference' ? { headers: { 'mcp-name': b64Name('process_large_dataset') } } : {}),
        },
      );
      hungUpAnswers.set(
        h,
        exchange(sent, (m, e) => {
          if (m.method === PROGRESS) e.close();
        }),
      );
    }
    await Promise.all([...hungUpAnswers.values()].map((e) => e.done));
  }

  /** What each listen stream heard of resources, by URI. */
  const heard = (who: Who) =>
    (listens.get(who)?.messages ?? [])
      .filter((m) => m.method === 'notifications/resources/updated')
      .map((m) => String(m.params?.uri));

  /**
   * Both principals listen to the same four files, two in each root. Each change a principal may
   * hear of is followed, once heard, by a change to a marker it may hear of: the feed hands every
   * event to every stream as it happens, and a stream's events arrive in order, so anything it
   * should not have heard would have arrived before its marker.
   */
  async function listenScenario(): Promise<void> {
    const everything = [...watched(alice), ...watched(bob)];
    for (const who of [alice, bob]) {
      listens.set(
        who,
        exchange(modern(who, 'subscriptions/listen', { notifications: { resourceSubscriptions: everything } })),
      );
    }
    for (const [who, e] of listens) {
      await e.waitFor(
        `${who.name}'s listen acknowledged`,
        (m) => m.method === 'notifications/subscriptions/acknowledged',
      );
    }
    await server.app.changes.whenWatching();
    const [aliceWatch, aliceMark] = watched(alice) as [string, string];
    const [bobWatch, bobMark] = watched(bob) as [string, string];
    await writeFile(abs(alice, `iso/watch-alice.md`), 'changed\n');
    await writeFile(abs(bob, `iso/watch-bob.md`), 'changed\n');
    await until(() => heard(alice).includes(aliceWatch) && heard(bob).includes(bobWatch), {
      what: 'each listener to hear of its own watched file',
      describe: () => JSON.stringify({ alice: heard(alice), bob: heard(bob) }),
    });
    await writeFile(abs(alice, `iso/mark-alice.md`), 'changed\n');
    await writeFile(abs(bob, `iso/mark-bob.md`), 'changed\n');
    await until(() => heard(alice).includes(aliceMark) && heard(bob).includes(bobMark), {
      what: 'each listener to hear of its own marker',
      describe: () => JSON.stringify({ alice: heard(alice), bob: heard(bob) }),
    });
    for (const e of listens.values()) e.close();
    await Promise.all([...listens.values()].map((e) => e.done));
  }

  it('answers every request of the interleaved mix with its own result, and nothing else', async () => {
    const scenarios = Promise.all([cancelScenario(), hangUpScenario(), listenScenario()]);
    // The load starts while the held calls and the listen streams are opening.
    for (const c of cases) answers.set(c, exchange(c.sent));
    await Promise.all([scenarios, ...[...answers.values()].map((e) => e.done)]);

    const failures: string[] = [];
    for (const c of cases) {
      const e = answers.get(c) as Exchange;
      const problems = problemsOf(c, e);
      if (problems.length > 0) {
        failures.push(
          `${c.label} [x-request-id ${e.requestId}]: ${problems.join('; ')}\n  sent: ${c.sent.body}\n  answer: ${e.raw.slice(0, 1500)}`,
        );
      }
    }
    expect(failures).toEqual([]);
    expect(cases.length).toBeGreaterThanOrEqual(300);
  }, 30_000);

  function problemsOf(c: Case, e: Exchange): string[] {
    const problems: string[] = [];
    if (e.status !== c.status) problems.push(`HTTP ${e.status}, expected ${c.status}`);
    if (!/^[0-9a-f-]{36}$/.test(e.requestId)) problems.push(`x-request-id ${JSON.stringify(e.requestId)}`);
    const finals = e.messages.filter(isResponse);
    if (finals.length !== 1) problems.push(`${finals.length} responses`);
    const final = finals[0];
    if (final && final.id !== 1) problems.push(`answered id ${JSON.stringify(final.id)}`);
    const notes = e.messages.filter((m) => !isResponse(m));
    for (const note of notes) {
      if (note.method !== PROGRESS || !c.progress) {
        problems.push(`unexpected ${JSON.stringify(note).slice(0, 300)}`);
        continue;
      }
      if (!Object.is(note.params?.progressToken, c.progress.token) || note.params?.total !== c.progress.total) {
        problems.push(`progress of another stream: ${JSON.stringify(note.params)}`);
      }
    }
    if (c.progress && notes.length === 0) problems.push('no progress notification');
    problems.push(...leaks(c.who, c.sent.body, e.raw, c.own, c.listsOwnFiles ? [...c.may, ...noncesOf(c.who)] : c.may));
    try {
      c.check?.(final);
    } catch (error) {
      problems.push((error as Error).message.split('\n')[0] ?? String(error));
    }
    return problems;
  }

  /**
   * What a text shown to `who` carries that it must not: a nonce that is neither its own nor one it
   * sent, or the other root's name or directory unless the request itself named them.
   */
  function leaks(who: Who, sent: string, text: string, own: readonly string[], may: readonly string[]): string[] {
    const problems: string[] = [];
    const found = new Set(text.match(NONCE) ?? []);
    for (const n of own) if (!found.has(n)) problems.push(`its own marker ${n} is missing`);
    for (const n of found) {
      if (!own.includes(n) && !may.includes(n)) problems.push(`carries ${n}, which belongs to "${owners.get(n)}"`);
    }
    const other = who === alice ? bob : alice;
    for (const secret of [other.dir, other.root]) {
      if (text.includes(secret) && !sent.includes(secret)) problems.push(`names ${JSON.stringify(secret)}`);
    }
    return problems;
  }

  it("ends exactly the cancelled calls: by principal, User-Agent and id, never another principal's", () => {
    const outcomes = held.map((h) => {
      const e = heldAnswers.get(h) as Exchange;
      const final = e.messages.find(isResponse);
      const progress = progressOf(e);
      return {
        call: h.label,
        id: final?.id,
        ends: errorCode(final?.result),
        progressIsItsOwn:
          progress.length > 0 &&
          progress.every((m) => Object.is(m.params?.progressToken, h.token) && m.params?.total === h.size),
        leaks: leaks(h.who, e.sent.body, e.raw, [], []),
      };
    });
    expect(outcomes).toEqual(
      held.map((h) => ({ call: h.label, id: h.id, ends: h.ends, progressIsItsOwn: true, leaks: [] })),
    );
    expect(cancelAnswers.map((e) => [e.status, e.raw])).toEqual(cancels.map(() => [202, '']));

    // A hung-up stream ends without a result, having carried only its own progress.
    const hung = hungUp.map((h) => {
      const e = hungUpAnswers.get(h) as Exchange;
      return {
        call: h.label,
        results: e.messages.filter(isResponse).length,
        progressIsItsOwn: progressOf(e).every(
          (m) => Object.is(m.params?.progressToken, h.token) && m.params?.total === h.size,
        ),
        leaks: leaks(h.who, e.sent.body, e.raw, [], []),
      };
    });
    expect(hung).toEqual(hungUp.map((h) => ({ call: h.label, results: 0, progressIsItsOwn: true, leaks: [] })));
  });

  it('tells each listen stream only of the files its grants let it read', () => {
    for (const who of [alice, bob]) {
      const e = listens.get(who) as Exchange;
      expect(e.status).toBe(200);
      expect(new Set(heard(who))).toEqual(new Set(watched(who)));
      expect(leaks(who, e.sent.body, e.raw, [], [])).toEqual([]);
      // Past the acknowledgement, which echoes the subscriptions asked for, nothing names the other root.
      const other = who === alice ? bob : alice;
      const told = e.messages.filter((m) => m.method !== 'notifications/subscriptions/acknowledged');
      expect(JSON.stringify(told)).not.toContain(other.dir);
    }
  });

  /** Every exchange of the run, by the id the server gave it, with who sent it and what it may carry. */
  function everyExchange() {
    const all: { label: string; who: Who; e: Exchange; route: 'fast' | 'reference'; may: string[] }[] = [];
    for (const c of cases)
      all.push({
        label: c.label,
        who: c.who,
        e: answers.get(c) as Exchange,
        route: c.route,
        may: [...c.own, ...c.may, ...(c.listsOwnFiles ? noncesOf(c.who) : [])],
      });
    for (const h of held)
      all.push({ label: h.label, who: h.who, e: heldAnswers.get(h) as Exchange, route: 'fast', may: [] });
    for (const h of hungUp)
      all.push({ label: h.label, who: h.who, e: hungUpAnswers.get(h) as Exchange, route: h.route, may: [] });
    for (const [i, c] of cancels.entries())
      all.push({ label: c.label, who: c.who, e: cancelAnswers[i] as Exchange, route: 'reference', may: [] });
    for (const [who, e] of listens) all.push({ label: `${who.name} listens`, who, e, route: 'reference', may: [] });
    return all;
  }

  it('files every audit record under the request that made it, naming its principal only', async () => {
    const all = everyExchange();
    const byId = new Map(all.map((x) => [x.e.requestId, x]));
    expect(byId.size).toBe(all.length);
    const expected = [
      ...cases.filter((c) => c.audited === 'always').map((c) => (answers.get(c) as Exchange).requestId),
      ...held.map((h) => (heldAnswers.get(h) as Exchange).requestId),
      ...hungUp.map((h) => (hungUpAnswers.get(h) as Exchange).requestId),
      ...[...listens.values()].map((e) => e.requestId),
    ];
    let records: AuditRecord[] = [];
    await until(
      async () => {
        await server.audit.flush();
        records = await readAudit(server.auditFile);
        const seen = new Set(records.map((r) => r.requestId));
        return expected.every((id) => seen.has(id));
      },
      {
        what: 'an audit record for every request that accessed a file',
        describe: () => {
          const seen = new Set(records.map((r) => r.requestId));
          return JSON.stringify(
            all.filter((x) => expected.includes(x.e.requestId) && !seen.has(x.e.requestId)).map((x) => x.label),
          );
        },
      },
    );

    const problems: string[] = [];
    for (const record of records) {
      const from = byId.get(record.requestId);
      if (!from) {
        problems.push(`a record of no request of this run: ${JSON.stringify(record)}`);
        continue;
      }
      const wrong: string[] = [];
      if (record.principal !== from.who.name) wrong.push(`names ${record.principal}`);
      if (record.decision === 'allow' && record.root !== null && record.root !== from.who.root)
        wrong.push('allowed in the other root');
      for (const n of JSON.stringify(record).match(NONCE) ?? [])
        if (!from.may.includes(n)) wrong.push(`carries ${n} of "${owners.get(n)}"`);
      if (wrong.length > 0) problems.push(`${from.label}: ${wrong.join(', ')}: ${JSON.stringify(record)}`);
    }
    for (const c of cases) {
      const mine = records.filter((r) => r.requestId === (answers.get(c) as Exchange).requestId);
      if (c.audited === 'never' && mine.length > 0)
        problems.push(`${c.label}: unexpected records ${JSON.stringify(mine)}`);
      try {
        c.checkAudit?.(mine);
      } catch (error) {
        problems.push(`${c.label}: ${(error as Error).message.split('\n')[0]}: ${JSON.stringify(mine)}`);
      }
    }
    for (const [who, e] of listens) {
      const mine = records.filter((r) => r.requestId === e.requestId);
      expect(mine.map((r) => [r.principal, r.op, r.reason])).toEqual([
        [who.name, 'subscribe', `hears of changes in "${who.root}"`],
      ]);
    }
    expect(problems).toEqual([]);

    // Cancelled: the calls the test cancelled, and no other.
    const cancelled = new Set(
      records.filter((r) => r.outcome === 'cancelled' || r.error === 'CANCELLED').map((r) => r.requestId),
    );
    const meant = [
      ...held.filter((h) => h.ends === 'CANCELLED').map((h) => heldAnswers.get(h) as Exchange),
      ...hungUpAnswers.values(),
    ].map((e) => e.requestId);
    expect([...cancelled].map((id) => byId.get(id)?.label).sort()).toEqual(
      meant.map((id) => byId.get(id)?.label).sort(),
    );
  });

  it('logs every request once, under its principal, on the path it was meant to take', async () => {
    const all = everyExchange();
    const lines = () => logs.filter((l) => l.msg === 'request');
    await until(() => all.every((x) => lines().some((l) => l.requestId === x.e.requestId)), {
      what: 'a request log line for every exchange',
    });
    const served = all.map((x) => {
      const mine = lines().filter((l) => l.requestId === x.e.requestId);
      return {
        request: x.label,
        principals: mine.map((l) => l.principal),
        reference: mine.map((l) => l.path === 'reference'),
      };
    });
    expect(served).toEqual(
      all.map((x) => ({ request: x.label, principals: [x.who.name], reference: [x.route === 'reference'] })),
    );
  });
});
