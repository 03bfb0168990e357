import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import initSqlJs from 'sql.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDatabase } from '../../src/db/sqlite.js';
import { until } from '../helpers/wait.js';
import { tempDir } from '../helpers/workspace.js';

describe('the SQLite engine', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let file: string;

  beforeAll(async () => {
    dir = await tempDir('mcpd-sqlite-');
    file = join(dir.dir, 'e.sqlite');
    const SQL = await initSqlJs();
    const db = new SQL.Database();
    db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    await writeFile(file, db.export());
  });
  afterAll(async () => dir?.cleanup());

  const allowAll = () => ({ allow: true });
  const limits = { maxRows: 10, maxBytes: 10_000, timeoutMs: 5000 };

  it('stops its worker once idle, and starts another for the next statement', async () => {
    const engine = new SqliteDatabase({ path: file, maxFileBytes: 1_000_000, heapBytes: 64 * 1024 * 1024, idleMs: 50 });
    try {
      const first = await engine.execute('SELECT v FROM t ORDER BY id', [], limits, allowAll);
      expect(first.kind === 'ran' && first.rows.rows).toEqual([['a'], ['b']]);
      expect(engine.holdsWorker).toBe(true);
      await until(() => !engine.holdsWorker, { what: 'the idle worker to stop', intervalMs: 10 });
      const again = await engine.execute('SELECT count(*) FROM t', [], limits, allowAll);
      expect(again.kind === 'ran' && again.rows.rows).toEqual([[2]]);
    } finally {
      await engine.close();
    }
  });

  it('never retires a worker with a statement still to answer', async () => {
    const engine = new SqliteDatabase({ path: file, maxFileBytes: 1_000_000, heapBytes: 64 * 1024 * 1024, idleMs: 1 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => engine.execute('SELECT v FROM t WHERE id = ?', [1], limits, allowAll)),
      );
      expect(answers.every((answer) => answer.kind === 'ran' && answer.rows.rows[0]?.[0] === 'a')).toBe(true);
    } finally {
      await engine.close();
    }
  });

  it('reads the file again when it changes, and refuses to run a plan made on the old one', async () => {
    const engine = new SqliteDatabase({ path: file, maxFileBytes: 1_000_000, heapBytes: 64 * 1024 * 1024 });
    try {
      const before = await engine.execute('SELECT count(*) FROM t', [], limits, allowAll);
      expect(before.kind === 'ran' && before.rows.rows).toEqual([[2]]);
      const SQL = await initSqlJs();
      const db = new SQL.Database();
      db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');");
      await writeFile(file, db.export());
      const after = await engine.execute('SELECT count(*) FROM t', [], limits, allowAll);
      expect(after.kind === 'ran' && after.rows.rows).toEqual([[3]]);
    } finally {
      await engine.close();
    }
  });
});
