import { readFileSync } from 'node:fs';

/** Above this a cgroup "limit" means none (v1 reports a huge page-aligned number for "unlimited"). */
const UNLIMITED = 2 ** 60;

function readNumber(path: string): number | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (text === 'max') return null;
    const value = Number(text);
    return Number.isFinite(value) && value > 0 && value < UNLIMITED ? value : null;
  } catch {
    return null;
  }
}

/**
 * The memory limit of the container this process runs in (cgroup v2, else v1), or null when
 * there is none. Read once at start-up for mcpd_memory_limit_bytes (the memory-near-limit alert);
 * the image's entry point sizes the heap from the same files (deploy/docker/entrypoint.sh).
 */
export function containerMemoryLimit(): number | null {
  return readNumber('/sys/fs/cgroup/memory.max') ?? readNumber('/sys/fs/cgroup/memory/memory.limit_in_bytes');
}
