/** The URL of `path` on a listener: an IPv6 address gets the brackets a URL needs. */
export function listenerUrl(scheme: 'http' | 'https', host: string, port: number, path: string): string {
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${shown}:${port}${path}`;
}
