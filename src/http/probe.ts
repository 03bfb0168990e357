import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * Asks a running mcpd whether it is alive (GET /health), for container health checks that must not
 * depend on curl. Resolves true only on a 200 within `timeoutMs`.
 */
export function probeHealth(url: URL, timeoutMs: number): Promise<boolean> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = request(
      url,
      // The probe talks to its own process over loopback: the certificate names the public host.
      { method: 'GET', timeout: timeoutMs, rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
