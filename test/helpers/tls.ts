import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Certificates of the tests' own: a CA, a server certificate and, for mutual TLS, a client's. */

const run = promisify(execFile);

/** Creates a CA and a server certificate for localhost/127.0.0.1 signed by it. */
export async function makeCertificates(openssl: string, dir: string): Promise<void> {
  await mkdir(join(dir, 'tls'), { recursive: true });
  const ca = ['-subj', '/CN=mcpd test CA', '-days', '2'];
  await run(openssl, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'ca.key'),
    '-out',
    join(dir, 'ca.pem'),
    ...ca,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run(openssl, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'tls/tls.key'),
    '-out',
    join(dir, 'server.csr'),
    '-subj',
    '/CN=localhost',
  ]);
  await writeFile(
    join(dir, 'server.ext'),
    [
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    join(dir, 'server.csr'),
    '-CA',
    join(dir, 'ca.pem'),
    '-CAkey',
    join(dir, 'ca.key'),
    '-CAcreateserial',
    '-out',
    join(dir, 'tls/tls.crt'),
    '-days',
    '2',
    '-extfile',
    join(dir, 'server.ext'),
  ]);
}

/** A client certificate (client.crt, client.key in `dir`) signed by the CA makeCertificates made there. */
export async function clientCertificate(openssl: string, dir: string): Promise<void> {
  await run(openssl, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'client.key'),
    '-out',
    join(dir, 'client.csr'),
    '-subj',
    '/CN=client',
  ]);
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    join(dir, 'client.csr'),
    '-CA',
    join(dir, 'ca.pem'),
    '-CAkey',
    join(dir, 'ca.key'),
    '-CAcreateserial',
    '-out',
    join(dir, 'client.crt'),
    '-days',
    '2',
    '-extfile',
    join(dir, 'client.ext'),
  ]);
}
