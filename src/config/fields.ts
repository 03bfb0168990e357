import * as z from 'zod';

/** Field types shared by several sections. */

export const port = z.number().int().min(0).max(65_535);

export const positiveInt = z.number().int().positive();

/** An OAuth scope token (RFC 6749 §3.3): what API keys carry and grants match. */
export const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'not a valid OAuth scope token');

/** A client's TLS files (Redis, PostgreSQL): paths relative to the config file, read at load. */
export const tlsFiles = z.strictObject({
  caFile: z.string().min(1).optional().describe('PEM CA bundle to trust instead of the system store.'),
  certFile: z.string().min(1).optional().describe('Client certificate (PEM), for mutual TLS.'),
  keyFile: z.string().min(1).optional().describe('Client key (PEM), for mutual TLS.'),
  servername: z.string().min(1).optional().describe('Name checked against the server certificate.'),
});
