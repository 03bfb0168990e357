/**
 * mulberry32: a small seeded generator, so the same seed gives the same sequence (fuzz cases,
 * race schedules, the benchmark's tree). Enough for shapes and choices, not for anything secret.
 */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
