/**
 * The cost of metrics plus tracing on a cheap tool call: the same built binary with both off, and
 * with metrics on and every request traced (sampled at 1.0) to an OTLP/HTTP sink on loopback, in
 * interleaved rounds. Reported as ratios against "both off", measured in this run.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compare } from './harness.js';

export async function observabilityOverhead(): Promise<void> {
  // The collector: accepts and drops spans, as fast as it can.
  let exportedBytes = 0;
  const sink = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => {
      exportedBytes += chunk.length;
    });
    req.on('end', () => res.end('{}'));
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const { port } = sink.address() as AddressInfo;
  try {
    await compare({
      title: 'metrics + tracing overhead',
      baseline: 'both off',
      variants: [
        { name: 'both off', config: 'metrics: { enabled: false }\n' },
        { name: 'metrics only', config: 'metrics: { enabled: true }\n' },
        {
          name: 'metrics+tracing',
          config: `metrics: { enabled: true }\ntracing: { enabled: true, sampleRatio: 1, endpoint: "http://127.0.0.1:${port}/v1/traces" }\n`,
        },
      ],
      footnote: () => `(${(exportedBytes / 1e6).toFixed(1)} MB of spans exported to the sink)`,
    });
  } finally {
    sink.close();
  }
}
