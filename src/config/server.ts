import proxyAddr from 'proxy-addr';
import * as z from 'zod';
import { DEFAULTS } from './defaults.js';
import { port, positiveInt } from './fields.js';

/** The `server` section: the listener, its timeouts and who may reach it. */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127(\.\d{1,3}){3}$/.test(host);
}

/** What proxy-addr accepts: checked here so a bad entry fails at start-up, not on every request. */
function isProxySpec(value: string): boolean {
  try {
    proxyAddr.compile([value]);
    return true;
  } catch {
    return false;
  }
}

export const serverSchema = z.strictObject({
  host: z.string().min(1).default(DEFAULTS.host).describe('Bind address; loopback only while `auth.mode` is `none`.'),
  port: port.default(DEFAULTS.port).describe('TCP port; 0 picks a free one.'),
  allowedHosts: z
    .array(z.string().min(1))
    .default([])
    .describe('Host header names accepted besides the loopback names (which are always accepted).'),
  allowedOrigins: z
    .array(z.string().min(1))
    .default([])
    .describe('Origin hostnames allowed to call /mcp from a browser, besides loopback origins.'),
  maxBodyBytes: positiveInt.default(DEFAULTS.maxBodyBytes).describe('Largest request body; a larger one gets 413.'),
  sseKeepAliveMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.sseKeepAliveMs)
    .describe('Interval of SSE keep-alive comments; 0 turns them off.'),
  publicUrl: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe(
      'The canonical URL clients use for /mcp (e.g. https://mcp.example.com/mcp): the OAuth resource identifier, the ' +
        'JWT audience and the base of the protected-resource metadata. Default: http://HOST:PORT/mcp.',
    ),
  tls: z
    .strictObject({
      certFile: z.string().min(1).describe('PEM certificate chain; relative to the config file.'),
      keyFile: z.string().min(1).describe('PEM private key; relative to the config file.'),
    })
    .optional()
    .describe('Serve HTTPS directly (reloaded on SIGHUP). Behind nginx, leave this out and let nginx terminate TLS.'),
  keepAliveTimeoutMs: positiveInt
    .default(DEFAULTS.keepAliveTimeoutMs)
    .describe('How long an idle keep-alive connection stays open.'),
  headersTimeoutMs: positiveInt
    .default(DEFAULTS.headersTimeoutMs)
    .describe('Time allowed to receive the request headers; must be above `keepAliveTimeoutMs`.'),
  requestTimeoutMs: z
    .number()
    .int()
    .min(0)
    .default(DEFAULTS.requestTimeoutMs)
    .describe('Time allowed to receive one whole request; 0 = no limit.'),
  fastPath: z
    .boolean()
    .default(true)
    .describe(
      'Answer tool calls, tools/list and resources requests directly from the parsed request. false sends every ' +
        "request through the SDK's reference handler instead: the same answers, several times slower (for diagnosis).",
    ),
  trustedProxies: z
    .array(z.string().min(1).refine(isProxySpec, 'not an IP address, a CIDR, or loopback/linklocal/uniquelocal'))
    .default([])
    .describe(
      'Addresses or CIDRs of proxies whose X-Forwarded-For is believed (for client.address); e.g. ["127.0.0.1", "10.0.0.0/8"].',
    ),
});
