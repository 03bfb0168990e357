/**
 * The worker thread a SQLite database is read in (CommonJS source, run with `eval`). It holds the
 * database file in memory (sql.js: SQLite compiled to WebAssembly, with no file system of the
 * host's: an ATTACH or a VACUUM INTO reaches nothing on the disk), reloads it when the file
 * changes, and answers three messages: `schema`, `plan` (SQLite's own statement split,
 * normalisation and EXPLAIN of one statement) and `run` (a planned statement, its rows bounded by
 * count and bytes). It decides nothing: the main thread judges the plan before any run, and
 * terminates this thread when a statement outlives its timeout (SQLite has no statement timeout).
 *
 * The WebAssembly heap is capped (`heapBytes`): sql.js lets it grow to 2 GiB, which one string
 * doubled in a recursive query reaches in seconds. The cap is set by rewriting the two places its
 * build names that maximum; a build where they are not found refuses to start, so an upgrade of
 * sql.js cannot silently drop the bound (the version is pinned, and a test provokes the cap).
 */
export const SQLITE_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');

const SQL_JS_MAX_HEAP = '2147483648';

function loadSqlJs() {
  const file = workerData.sqlJsPath;
  const source = fs.readFileSync(file, 'utf8');
  const cap = String(workerData.heapBytes);
  const guard = 'if(a>' + SQL_JS_MAX_HEAP + ')return!1;';
  const clamp = 'Math.min(' + SQL_JS_MAX_HEAP + ',';
  if (source.split(guard).length !== 2 || source.split(clamp).length !== 2) {
    throw new Error('this build of sql.js cannot have its heap capped (its memory growth code is not the expected one)');
  }
  const patched = source.replace(guard, 'if(a>' + cap + ')return!1;').replace(clamp, 'Math.min(' + cap + ',');
  const module = { exports: {} };
  new Function('module', 'exports', 'require', '__dirname', '__filename', patched)(
    module, module.exports, require, path.dirname(file), file,
  );
  return module.exports({ locateFile: (name) => path.join(path.dirname(file), name) });
}

let SQL;
let db;
let generation = '';

function fileGeneration() {
  const stat = fs.statSync(workerData.path);
  if (!stat.isFile()) throw Object.assign(new Error('the database is not a regular file'), { code: 'NOT_A_FILE' });
  if (stat.size > workerData.maxFileBytes) {
    throw Object.assign(
      new Error('the database file is ' + stat.size + ' bytes, above its maxFileBytes (' + workerData.maxFileBytes + ')'),
      { code: 'TOO_LARGE' },
    );
  }
  return stat.dev + ':' + stat.ino + ':' + stat.size + ':' + stat.mtimeMs + ':' + stat.ctimeMs;
}

/** The database as the file is now: read again when it changed (size, times or inode). */
function current() {
  const now = fileGeneration();
  if (db && now === generation) return db;
  const bytes = fs.readFileSync(workerData.path);
  if (db) db.close();
  db = new SQL.Database(bytes);
  // A second lock behind the planner, which refuses every write before it runs: the copy in memory
  // refuses to change too.
  db.exec('PRAGMA query_only = 1');
  generation = now;
  return db;
}

function rowsOf(database, sql) {
  const result = database.exec(sql);
  return result.length === 0 ? [] : result[0].values;
}

function schema(database) {
  const objects = rowsOf(database, "SELECT type, name, tbl_name, rootpage FROM sqlite_schema WHERE type IN ('table', 'index', 'view')");
  const withoutRowid = new Set(rowsOf(database, "SELECT name FROM pragma_table_list WHERE schema = 'main' AND wr = 1").map(([name]) => name));
  const tables = [];
  const indexes = [];
  const views = [];
  for (const [type, name, table, rootpage] of objects) {
    if (type === 'table') {
      const columns = rowsOf(database, 'PRAGMA table_xinfo(' + JSON.stringify(name) + ')').map(([cid, column, declared, notnull, dflt, pk, hidden]) => ({
        name: column, type: declared, notNull: notnull === 1, primaryKey: pk > 0, pk, hidden,
      }));
      tables.push({ name, rootpage, columns, virtual: rootpage === 0, withoutRowid: withoutRowid.has(name) });
    } else if (type === 'index') {
      const columns = rowsOf(database, 'PRAGMA index_xinfo(' + JSON.stringify(name) + ')')
        .filter(([, , , , , key]) => key === 1)
        .map(([seqno, cid, column]) => (cid >= 0 ? column : cid === -1 ? '' : null));
      indexes.push({ name, table, rootpage, columns });
    } else {
      views.push({ name, columns: rowsOf(database, 'PRAGMA table_xinfo(' + JSON.stringify(name) + ')').map(([, column, declared]) => ({ name: column, type: declared })) });
    }
  }
  return { tables, indexes, views };
}

function plan(database, sql) {
  const statements = [];
  try {
    for (const statement of database.iterateStatements(sql)) {
      statements.push({ sql: statement.getSQL(), normalized: statement.getNormalizedSQL() });
      statement.free();
      if (statements.length > 1) break;
    }
  } catch (error) {
    return { error: error.message, statements: statements.length };
  }
  if (statements.length !== 1) return { statements: statements.length };
  const [only] = statements;
  const explain = database.exec('EXPLAIN ' + only.sql);
  return {
    statements: 1,
    normalized: only.normalized,
    explain: explain.length === 0 ? [] : explain[0].values.map(([addr, opcode, p1, p2, p3, p4]) => [opcode, p1, p2, p3, p4 === null ? null : String(p4)]),
  };
}

function cell(value) {
  if (value instanceof Uint8Array) return { base64: Buffer.from(value).toString('base64') };
  return value;
}

function run(database, sql, params, maxRows, maxBytes) {
  const statement = database.prepare(sql);
  try {
    statement.bind(params);
    const columns = statement.getColumnNames();
    const rows = [];
    let bytes = 2;
    let truncated = null;
    while (statement.step()) {
      if (rows.length === maxRows) { truncated = 'rows'; break; }
      const row = statement.get().map(cell);
      const size = JSON.stringify(row).length + 1;
      if (bytes + size > maxBytes) { truncated = 'bytes'; break; }
      bytes += size;
      rows.push(row);
    }
    return { columns, rows, truncated, bytes };
  } finally {
    statement.free();
  }
}

const ready = Promise.resolve().then(loadSqlJs).then((loaded) => { SQL = loaded; });

parentPort.on('message', async (message) => {
  try {
    await ready;
    const database = current();
    if (message.kind === 'schema') {
      parentPort.postMessage({ id: message.id, generation, schema: schema(database) });
    } else if (message.kind === 'plan') {
      parentPort.postMessage({ id: message.id, generation, ...plan(database, message.sql) });
    } else if (message.generation !== generation) {
      parentPort.postMessage({ id: message.id, stale: true });
    } else {
      parentPort.postMessage({ id: message.id, ...run(database, message.sql, message.params, message.maxRows, message.maxBytes) });
    }
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: String(error && error.message || error), code: error && error.code });
  }
});
`;
