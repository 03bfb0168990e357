// Rewrites the generated regions of README.md and docs/*.md (npm run docs): the tables that
// restate code (config keys, error codes, tools, metrics). A test fails when a committed doc is stale.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyRegions, docFiles, REPO, readDoc, renderRegions } from './docs/generate.js';

const rendered = await renderRegions();
const used = new Set<string>();
// Every page is rendered before any is written, so a bad marker leaves every file as it was.
const pages = docFiles().map((file) => {
  const before = readDoc(file);
  const { text, names } = applyRegions(before, rendered, file);
  for (const name of names) used.add(name);
  return { file, before, text };
});
for (const { file, before, text } of pages) {
  if (text === before) continue;
  writeFileSync(join(REPO, file), text);
  process.stderr.write(`wrote ${file}\n`);
}
for (const name of rendered.keys()) {
  if (!used.has(name)) process.stderr.write(`warning: no page has the region ${name}\n`);
}
