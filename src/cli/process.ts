import { type CliHost, main } from './main.js';

/** The real process as a CliHost: the one place that touches `process`. */
export async function runFromProcess(): Promise<void> {
  const host: CliHost = {
    argv: process.argv.slice(2),
    env: process.env,
    pid: process.pid,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    onSignal: (signal, handler) => {
      process.on(signal, handler);
    },
    exitNow: (code) => process.exit(code),
  };
  const exitCode = await main(host);
  process.exitCode = exitCode;
  // Exit naturally once output has drained; if some handle still holds the loop, do not hang on it.
  setTimeout(() => process.exit(exitCode), 2000).unref();
}
