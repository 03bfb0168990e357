import * as z from 'zod';
import { BUILTIN_DATABASE_EXCLUDES, DATABASE_DEFAULTS } from './defaults.js';
import { tlsFiles } from './fields.js';
import { globList } from './policy.js';

/** `databases`: what may be queried, under the same policy style as roots. */

const bytes = (max: number) => z.int().min(1024).max(max);

const common = {
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .describe('Shown to clients in list_databases; names it in grants and db:// URIs.'),
  description: z.string().max(2000).default('').describe('Shown to clients.'),
  tables: globList
    .default([])
    .describe('Globs of the tables and views a statement may read. None by default: deny unless listed.'),
  exclude: globList
    .default([])
    .describe(
      `Never visible, whatever else matches: globs of table names, and of columns as COLUMN or TABLE.COLUMN (case-insensitive). Added to the built-in list: ${BUILTIN_DATABASE_EXCLUDES.join(', ')}.`,
    ),
  maxRows: z
    .int()
    .min(1)
    .max(100_000)
    .default(DATABASE_DEFAULTS.maxRows)
    .describe('Rows one statement returns at most.'),
  maxResultBytes: bytes(16 * 1024 * 1024)
    .default(DATABASE_DEFAULTS.maxResultBytes)
    .describe('Bytes of rows (as JSON) one statement returns at most.'),
  statementTimeoutMs: z
    .int()
    .min(10)
    .max(600_000)
    .default(DATABASE_DEFAULTS.statementTimeoutMs)
    .describe('A statement still running after this is stopped.'),
};

const sqliteSchema = z.strictObject({
  ...common,
  driver: z.literal('sqlite').describe('sqlite: a database file; postgres: a PostgreSQL server.'),
  path: z
    .string()
    .min(1)
    .describe('sqlite: the database file, as an absolute path, a file:// URI, or a path relative to the config file.'),
  maxFileBytes: bytes(4 * 1024 * 1024 * 1024)
    .default(DATABASE_DEFAULTS.maxFileBytes)
    .describe('sqlite: the file is read into memory; a bigger file is refused.'),
  maxMemoryBytes: z
    .int()
    .min(16 * 1024 * 1024)
    .max(2 * 1024 * 1024 * 1024)
    .default(DATABASE_DEFAULTS.maxMemoryBytes)
    .describe('sqlite: the memory of its worker (the file and what a statement builds); beyond it a statement fails.'),
});

const postgresSchema = z.strictObject({
  ...common,
  driver: z.literal('postgres'),
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^/]+\/[^/?#]+(\?.*)?$/, 'postgres://USER@HOST:PORT/DATABASE[?sslmode=...]')
    .refine((url) => !/^postgres(ql)?:\/\/[^@/]*:[^@/]*@/.test(url), {
      message: 'no password in the URL (it would be logged): use passwordFile or passwordEnv',
    })
    .describe('postgres: the server, database and role, as postgres://USER@HOST:PORT/DATABASE (sslmode in the query).'),
  passwordFile: z
    .string()
    .min(1)
    .optional()
    .describe('postgres: file holding the password; relative to the config file.'),
  passwordEnv: z.string().min(1).optional().describe('postgres: environment variable holding the password.'),
  schema: z
    .string()
    .min(1)
    .default('public')
    .describe('postgres: the schema whose tables `tables` names; tables elsewhere are not visible.'),
  poolSize: z.int().min(1).max(64).default(4).describe('postgres: connections held open, one statement each.'),
  tls: tlsFiles
    .optional()
    .describe('postgres: TLS that verifies the server (the certificate and its name), whatever sslmode the URL gives.'),
  connectTimeoutMs: z.int().min(100).max(60_000).default(5000).describe('postgres: time to connect.'),
});

export const databaseSchema = z.discriminatedUnion('driver', [sqliteSchema, postgresSchema]);

export const databasesSchema = z
  .array(databaseSchema)
  .default([])
  .describe('Databases clients may query, read-only, under the same policy, grants and audit as roots.');
