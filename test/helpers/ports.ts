import { createServer } from 'node:net';

/**
 * Ports are handed out below the kernel's ephemeral range (32768 and up on Linux): a port taken
 * from that range with listen(0) can become the local port of some outgoing connection before the
 * component it was meant for binds it. Each vitest worker draws from a slice of its own, so two
 * test files running at once are never handed the same port, and a process never hands one out twice.
 */
const FIRST = 12_000;
const LAST = 32_000;
const SLICES = 8;
const SLICE = Math.floor((LAST - FIRST) / SLICES);
const worker = (Number(process.env.VITEST_POOL_ID ?? '1') - 1) % SLICES;
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A loopback port free right now, for components that cannot report the port they bound to. */
export async function freePort(): Promise<number> {
  const start = FIRST + worker * SLICE;
  const offset = Math.floor(Math.random() * SLICE);
  for (let i = 0; i < SLICE; i++) {
    const port = start + ((offset + i) % SLICE);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free loopback port left in ${start}..${start + SLICE - 1}`);
}
