import { describe, expect, it } from 'vitest';
import { BUILTIN_DATABASE_EXCLUDES } from '../../src/config/defaults.js';
import type { DatabaseConfig } from '../../src/config/schema.js';
import { DatabasePolicy, judgeStatement } from '../../src/policy/databases.js';

const policy = new DatabasePolicy({
  name: 'd',
  description: '',
  driver: 'sqlite',
  path: '/nowhere',
  tables: ['customers', 'order_*', 'Mixed'],
  exclude: [...BUILTIN_DATABASE_EXCLUDES, 'customers.email', 'order_archive'],
  maxRows: 10,
  maxResultBytes: 1024,
  statementTimeoutMs: 100,
  maxFileBytes: 1024,
  maxMemoryBytes: 16 * 1024 * 1024,
} as DatabaseConfig);

const touched = (tables: string[], columns: Record<string, string[]>) => ({
  tables: new Set(tables),
  columns: new Map(Object.entries(columns).map(([table, names]) => [table, new Set(names)])),
});

describe('the database policy', () => {
  it.each([
    ['customers', undefined],
    ['CUSTOMERS', undefined],
    ['order_items', undefined],
    ['mixed', undefined],
    ['order_archive', 'exclude:order_archive'],
    ['api_tokens', 'exclude:*token*'],
    ['sqlite_sequence', 'exclude:sqlite_*'],
    ['products', 'default-deny:table'],
  ])('judges table %s: %s', (table, rule) => {
    expect(policy.tableRule(table)).toBe(rule);
  });

  it.each([
    ['customers', 'name', undefined],
    ['customers', 'email', 'exclude:customers.email'],
    ['CUSTOMERS', 'EMAIL', 'exclude:customers.email'],
    ['order_items', 'email', undefined],
    ['customers', 'password_hash', 'exclude:*password*'],
    ['customers', 'ResetToken', 'exclude:*token*'],
    ['order_items', 'api_key_id', 'exclude:*api_key*'],
  ])('judges column %s.%s: %s', (table, column, rule) => {
    expect(policy.columnRule(table, column)).toBe(rule);
  });

  it('allows a statement that reads only visible tables and columns, naming the globs that allowed it', () => {
    const decision = judgeStatement(policy, touched(['customers', 'order_items'], { customers: ['name'] }), () => []);
    expect(decision).toEqual({
      allow: true,
      rule: 'tables:customers,order_*',
      reason: 'reads "customers", "order_items"',
    });
  });

  it('refuses a hidden table as if it did not exist, and a hidden column without naming it', () => {
    const table = judgeStatement(policy, touched(['api_tokens'], {}), () => []);
    expect(table).toMatchObject({ allow: false, rule: 'exclude:*token*', shown: 'no such table: api_tokens' });
    const column = judgeStatement(policy, touched(['customers'], { customers: ['name', 'password_hash'] }), () => []);
    expect(column).toMatchObject({ allow: false, rule: 'exclude:*password*' });
    expect(column.allow ? '' : column.shown).not.toMatch(/password/);
  });

  it('judges a whole-table read column by column, and refuses one whose columns are unknown', () => {
    const whole = touched(['customers'], { customers: ['*'] });
    expect(judgeStatement(policy, whole, () => ['id', 'name']).allow).toBe(true);
    expect(judgeStatement(policy, whole, () => ['id', 'email'])).toMatchObject({ rule: 'exclude:customers.email' });
    expect(judgeStatement(policy, whole, () => undefined)).toMatchObject({ allow: false, rule: 'sql:whole-table' });
  });
});
