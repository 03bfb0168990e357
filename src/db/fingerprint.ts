/**
 * A statement's fingerprint for the audit log, where the database offers no normaliser of its own
 * (PostgreSQL does not expose pg_stat_statements' to clients): comments dropped, whitespace
 * collapsed, and every literal (strings, dollar-quoted strings, numbers) replaced by `?`, so that a
 * secret written into a statement's text never reaches the log. Decides nothing: what a statement
 * touches comes from the database's planner.
 */
export function fingerprint(sql: string): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  const emit = (token: string) => {
    if (token === ' ') {
      if (out.length > 0 && !out.endsWith(' ')) out += ' ';
      return;
    }
    out += token;
  };
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
      emit(' ');
    } else if (c === '/' && next === '*') {
      // PostgreSQL's block comments nest.
      let depth = 0;
      do {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      } while (i < n && depth > 0);
      emit(' ');
    } else if (/\s/.test(c)) {
      i++;
      emit(' ');
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'")) {
      i += c === "'" ? 1 : 2;
      while (i < n) {
        if (sql[i] === '\\' && c !== "'") i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") {
          i++;
          break;
        } else i++;
      }
      emit('?');
    } else if (c === '$' && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = (/^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64)) as RegExpExecArray)[0];
      const end = sql.indexOf(tag, i + tag.length);
      i = end < 0 ? n : end + tag.length;
      emit('?');
    } else if (c === '"') {
      // A quoted identifier: kept as written.
      let j = i + 1;
      while (j < n && !(sql[j] === '"' && sql[j + 1] !== '"')) j += sql[j] === '"' ? 2 : 1;
      emit(sql.slice(i, j + 1));
      i = j + 1;
    } else if (/[0-9]/.test(c) || (c === '.' && next !== undefined && /[0-9]/.test(next))) {
      // A number, unless it ends an identifier (t1): those were consumed whole below.
      while (i < n && /[0-9.eE+_xXa-fA-F]/.test(sql[i] as string)) {
        if ((sql[i] === '+' || sql[i] === '-') && !/[eE]/.test(sql[i - 1] as string)) break;
        i++;
      }
      emit('?');
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j] as string)) j++;
      emit(sql.slice(i, j));
      i = j;
    } else {
      emit(c);
      i++;
    }
  }
  return out.trim();
}
