import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets, real processes and real file systems: generous, but bounded.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more workers only make the timing-sensitive process tests noisier.
    poolOptions: { forks: { minForks: 1, maxForks: 2 } },
    allowOnly: false,
    passWithNoTests: false,
  },
});
