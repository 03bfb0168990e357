import { PassThrough } from 'node:stream';
import { type CliHost, main } from '../../src/cli/main.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs one mcpd command line in this process, against streams and an environment of the test's
 * own (nothing of this process's environment leaks in): the CLI as a function, argv and env in,
 * exit code and output out. Commands that serve (serve, stdio) are tested by spawning the binary.
 */
export async function runCli(argv: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk;
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk;
  });
  const host: CliHost = {
    argv,
    env,
    stdin: new PassThrough(),
    stdout,
    stderr,
    onSignal: () => {},
    exitNow: (code) => {
      throw new Error(`the CLI asked to exit at once with ${code}`);
    },
  };
  const code = await main(host);
  return { code, stdout: out, stderr: err };
}
