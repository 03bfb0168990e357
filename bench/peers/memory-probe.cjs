// Preloaded (node --expose-gc -r) into every server the request-path bench measures for memory:
// on SIGUSR2 it collects garbage twice and writes process.memoryUsage() to BENCH_MEMORY_FILE, so
// retained memory is read the same way in mcpd and in its peers.
const { writeFileSync } = require('node:fs');

process.on('SIGUSR2', () => {
  global.gc?.();
  global.gc?.();
  const sample = { ...process.memoryUsage(), at: Date.now() };
  writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify(sample));
});
