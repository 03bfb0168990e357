// npm run build: the binary as a handful of bundled files, not three hundred modules.
//
// Starting `mcpd stdio` spent half its 540 ms in Node's module loader (resolving, reading and
// linking ~300 ES modules of ours, zod's and the SDK's); bundled, it starts in about 290 ms. The
// commands still load lazily: each dynamic import() becomes its own chunk. Type-checking is
// `npm run check` (tsc --noEmit); esbuild only strips types.
//
// dist/bin/ holds the chunks, two levels below the package root like the sources they come from,
// so paths the code resolves against import.meta.url (package.json, the demo config) still land.
// Packages loaded at run time with createRequire (OpenTelemetry, pino-pretty) stay in
// node_modules. dist/main.js, the package's bin, is a one-line entry.
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ['src/main.ts'],
  outdir: 'dist/bin',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  keepNames: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  // Bundled CommonJS code calls require(); in an ES module it must be made.
  banner: {
    js: "import { createRequire as __mcpdCreateRequire } from 'node:module'; const require = __mcpdCreateRequire(import.meta.url);",
  },
});
writeFileSync('dist/main.js', "#!/usr/bin/env node\nimport './bin/main.js';\n");
chmodSync('dist/main.js', 0o755);
