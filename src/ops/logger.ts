import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import { type DestinationStream, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger };

/** Paths redacted from every log line, compiled once. Tokens and keys never reach a log. */
const REDACT = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'token',
  'apiKey',
  'password',
  'secret',
];

const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

export interface LoggerOptions {
  /** Where lines go; stderr (fd 2) when absent. Injected so tests can capture lines. */
  destination?: DestinationStream;
  /** Readable lines for a person (pino-pretty) instead of one JSON object a line. */
  pretty?: boolean;
}

/**
 * Logs to stderr: JSON lines, or readable ones when `pretty`. stdout is never a destination: in
 * stdio mode it carries protocol frames. Redaction applies to both formats (pino redacts before
 * the line is formatted). A bare destination stream as the second argument is the JSON logger on it.
 */
export function createLogger(level: string, options: LoggerOptions | DestinationStream = {}): Logger {
  const { destination, pretty = false }: LoggerOptions = 'write' in options ? { destination: options } : options;
  return pino(
    {
      name: 'mcpd',
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pretty ? prettyStream(destination) : jsonStream(destination),
  );
}

/**
 * A process's own stderr (a stream onto a descriptor) is written by pino's asynchronous writer:
 * a synchronous write per access-log line costs a system call on the request path (6% of a cheap
 * call's CPU under load), while the asynchronous one gathers lines written while the previous
 * write is in flight. Lines are not audit records (the audit log has its own sink and its own
 * durability); the shutdown paths flush before exiting. Any other stream (tests) is written as is.
 */
function jsonStream(destination: DestinationStream | undefined): DestinationStream {
  const fd = (destination as { fd?: unknown } | undefined)?.fd ?? (destination ? undefined : 2);
  if (typeof fd !== 'number') return destination as DestinationStream;
  // A reader that stops reading (a full pipe) cannot grow the buffer past this: lines beyond it are dropped.
  return pino.destination({ fd, sync: false, maxLength: MAX_BUFFERED_LOG_BYTES });
}

/**
 * pino-pretty as a stream in this thread (not a worker transport), loaded only when asked for, so
 * JSON runs never load it. It is required rather than imported with import(), which would make
 * createLogger asynchronous and leave lines logged before it resolved nowhere to go.
 */
function prettyStream(destination: DestinationStream | undefined): DestinationStream {
  const build = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const colorize = destination ? (destination as { isTTY?: boolean }).isTTY === true : isatty(2);
  return build({
    destination: destination ?? 2,
    sync: true,
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    // One line a record: the message, then any other fields as compact JSON.
    singleLine: true,
    ignore: 'pid,hostname,url,connect',
    messageFormat: readableMessage,
  });
}

/** Where a line says the server listens and how to connect, that is the message (so `url` and `connect` are ignored as fields). */
function readableMessage(log: Record<string, unknown>, messageKey: string): string {
  let message = String(log[messageKey] ?? '');
  if (typeof log.url === 'string') message += ` on ${log.url}`;
  if (typeof log.connect === 'string') message += `; connect with: ${log.connect}`;
  return message;
}
