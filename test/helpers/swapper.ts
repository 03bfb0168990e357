import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { requireCommand } from './tools.js';

/**
 * A local attacker for race tests: a python3 process that atomically exchanges two entries with
 * renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) in a tight loop, e.g. a real directory inside
 * a root and a symlink beside it that points outside. Every instant, each name is one or the other;
 * no name is ever missing, so whatever a call resolves, opens or names may change under it.
 *
 * python3 is required (it is node-gyp's dependency, so it is on every machine that builds mcpd);
 * the exchange is called through ctypes, from libc, or by syscall number where libc lacks it. The
 * loop yields the CPU after each exchange, so that on a busy machine it does not starve the calls it
 * races with; it still swaps tens of thousands of times a second.
 */
const SWAPPER = String.raw`
import ctypes, json, os, platform, signal, sys

a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
libc = ctypes.CDLL(None, use_errno=True)
if hasattr(libc, 'renameat2'):
    exchange_fn = libc.renameat2
    exchange_fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    exchange = lambda: exchange_fn(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
else:
    number = {'x86_64': 316, 'aarch64': 276, 'arm64': 276}[platform.machine()]
    libc.syscall.restype = ctypes.c_long
    exchange = lambda: libc.syscall(number, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)

stopping = False
def stop(signum, frame):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

parent = os.getppid()
swaps = 0
failures = 0
while not stopping:
    if exchange() == 0:
        swaps += 1
        if swaps == 1:
            sys.stdout.write('ready\n')
            sys.stdout.flush()
    else:
        failures += 1
        err = ctypes.get_errno()
        if swaps == 0 or failures > 1000:
            sys.stderr.write('renameat2 failed: %s\n' % os.strerror(err))
            sys.exit(2)
    # An orphan (the test runner died) stops by itself.
    if swaps % 4096 == 0 and os.getppid() != parent:
        break
    # Still a tight loop on an idle core; on a busy machine, the calls under test get their share.
    os.sched_yield()
# An even count leaves every name where it started.
if swaps % 2 == 1 and exchange() == 0:
    swaps += 1
sys.stdout.write(json.dumps({'swaps': swaps, 'failures': failures}) + '\n')
sys.stdout.flush()
`;

export interface SwapReport {
  /** Successful exchanges; always even, so both names end as they began. */
  readonly swaps: number;
  /** Exchanges that failed (a name briefly missing); the swapper gives up after 1000. */
  readonly failures: number;
}

export interface Swapper {
  readonly child: ChildProcess;
  /** Signals the swapper, waits for it to exit, and returns its report. */
  stop(): Promise<SwapReport>;
}

/**
 * Starts swapping `a` and `b` and resolves once the first exchange has happened (fails if it
 * cannot, e.g. on a file system without RENAME_EXCHANGE).
 */
export function startSwapper(a: string, b: string, timeoutMs = 10_000): Promise<Swapper> {
  const python = requireCommand('python3');
  const child = spawn(python, ['-c', SWAPPER, a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let stopping: Promise<SwapReport> | undefined;
  const swapper: Swapper = {
    child,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const { code, signal } = await exited;
        await closed;
        const last = stdout.trim().split('\n').at(-1) ?? '';
        if (code !== 0 || !last.startsWith('{')) {
          throw new Error(`the swapper exited with ${code ?? signal}: ${stderr}${stdout}`);
        }
        return JSON.parse(last) as SwapReport;
      })();
      return stopping;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the swapper did not start in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk: string) => {
      const before = stdout;
      stdout += chunk;
      if (!before.includes('ready\n') && stdout.includes('ready\n')) {
        clearTimeout(timer);
        resolve(swapper);
      }
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the swapper exited with ${code ?? signal} before swapping: ${stderr}`));
    });
  });
}

/**
 * What a directory tree is, entry by entry, to the byte: type, mode, inode, size, modification
 * time and contents of every file, and the target of every symlink, keyed by relative path, never
 * following a link. Directory times are kept, so even an entry created and removed again shows.
 * With `inodeTimes` (the default), files' change times and link counts are kept as well; a test
 * that itself makes hard links to these files turns that off.
 */
export async function snapshotTree(
  dir: string,
  options: { readonly inodeTimes?: boolean } = {},
): Promise<Record<string, string>> {
  const inodeTimes = options.inodeTimes ?? true;
  const out: Record<string, string> = {};
  const visit = async (relPath: string): Promise<void> => {
    const path = relPath === '' ? dir : join(dir, relPath);
    const stats = await lstat(path, { bigint: true });
    const common = `mode=${stats.mode.toString(8)} ino=${stats.ino} mtime=${stats.mtimeNs}`;
    if (stats.isSymbolicLink()) {
      out[relPath] = `symlink ${common} -> ${await readlink(path)}`;
    } else if (stats.isDirectory()) {
      out[relPath] = `directory ${common} ctime=${stats.ctimeNs}`;
      for (const name of (await readdir(path)).sort()) await visit(relPath === '' ? name : `${relPath}/${name}`);
    } else if (stats.isFile()) {
      const digest = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
      const inode = inodeTimes ? ` ctime=${stats.ctimeNs} nlink=${stats.nlink}` : '';
      out[relPath] = `file ${common} size=${stats.size}${inode} sha256=${digest}`;
    } else {
      out[relPath] = `other ${common}`;
    }
  };
  await visit('');
  return out;
}
