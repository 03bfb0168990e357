import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * The absolute path of a command, or undefined when it is not installed. Daemons (nginx, dockerd)
 * live in /usr/sbin on Debian, which a non-login PATH may lack, so that is searched too.
 */
export function findCommand(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter((d) => d.length > 0)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** The absolute path of a command a test needs. Fails (never skips) when it is missing. */
export function requireCommand(name: string): string {
  const found = findCommand(name);
  if (found === undefined) {
    throw new Error(`${name} is not installed: run scripts/ensure-tools.sh (npm test runs it first)`);
  }
  return found;
}
