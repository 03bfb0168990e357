import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface JsonReceiver {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A loopback HTTP server that reads each request's JSON body and answers with the status
 * `onBody` returns (a collector's OTLP endpoint, Alertmanager's webhook receiver, ...).
 */
export async function startJsonReceiver(
  onBody: (body: unknown, headers: IncomingHttpHeaders) => number,
): Promise<JsonReceiver> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk;
    });
    req.on('end', () => {
      const status = onBody(JSON.parse(body), req.headers);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Exporters in other processes keep their connections alive.
        server.closeAllConnections();
      }),
  };
}
