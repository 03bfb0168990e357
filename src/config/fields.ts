import * as z from 'zod';

/** Field types shared by several sections. */

export const port = z.number().int().min(0).max(65_535);

export const positiveInt = z.number().int().positive();

/** An OAuth scope token (RFC 6749 §3.3): what API keys carry and grants match. */
export const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'not a valid OAuth scope token');
