import { type DestinationStream, type Logger, pino } from 'pino';

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

/**
 * JSON logs to stderr. stdout is never a destination: in stdio mode it carries protocol frames.
 * The destination is injected so tests can capture lines.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'mcpd',
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
