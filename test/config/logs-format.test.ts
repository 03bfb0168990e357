import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/ops/logger.js';

/** A destination that keeps what is written, and says when a line has arrived. */
function capture(): { stream: Writable; text: () => string; line: Promise<void> } {
  const chunks: string[] = [];
  let arrived: () => void = () => {};
  const line = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      if (chunks.join('').includes('\n')) arrived();
      done();
    },
  });
  return { stream, text: () => chunks.join(''), line };
}

describe('log format', () => {
  it('defaults to auto, and accepts json and pretty only', () => {
    expect(loadConfig().log).toEqual({ level: 'info', format: 'auto' });
    const roots = [{ name: 'a', uri: './a' }];
    expect(configSchema.parse({ roots, log: { format: 'pretty' } }).log.format).toBe('pretty');
    expect(configSchema.safeParse({ roots, log: { format: 'yaml' } }).success).toBe(false);
  });

  it('writes readable lines when pretty, with the address and how to connect, and still redacts', async () => {
    const out = capture();
    const logger = createLogger('info', { destination: out.stream, pretty: true });
    const url = 'http://127.0.0.1:8000/mcp';
    logger.info({ url, connect: `claude mcp add --transport http mcpd-http ${url}`, token: 'sekrit' }, 'listening');
    await out.line;
    const [line] = out.text().split('\n');
    expect(line).not.toMatch(/^\{/);
    expect(line).toContain(`INFO (mcpd): listening on ${url}; connect with: claude mcp add --transport http mcpd-http`);
    expect(line).toContain('[redacted]');
    expect(out.text()).not.toContain('sekrit');
  });

  it('writes JSON lines otherwise, keeping msg and url as fields', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { destination: { write: (line: string) => void lines.push(line) } });
    logger.info({ url: 'http://127.0.0.1:8000/mcp' }, 'listening');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ msg: 'listening', url: 'http://127.0.0.1:8000/mcp' });
  });
});
