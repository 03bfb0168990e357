import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './workspace.js';

/**
 * Runs tsc (strict, NodeNext, no emit) on one generated file, outside the project's tsconfig: how
 * deploy files are checked against published types (kubernetes-types, @grafana/schema). The file
 * must sit inside the repository so that those types resolve from node_modules.
 */
export function typeCheckFile(
  file: string,
  options: { skipLibCheck?: boolean } = {},
): { status: number | null; output: string } {
  const run = spawnSync(
    join(REPO, 'node_modules/.bin/tsc'),
    [
      '--ignoreConfig',
      '--noEmit',
      '--strict',
      ...(options.skipLibCheck ? ['--skipLibCheck'] : []),
      '--target',
      'ES2022',
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      file,
    ],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 },
  );
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
