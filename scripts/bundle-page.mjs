// Copies the web page of `strata ui` into dist/ui/page/: the files of
// src/ui/page/ as they are (plain ES modules, no build step), strata's byte
// formatting (dist/units.js, so the page prints sizes as the CLI does) and
// d3-hierarchy's ES module build, vendored so the page works offline.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src/ui/page');
const out = join(root, 'dist/ui/page');
const units = join(root, 'dist/units.js');
if (!existsSync(units)) {
  process.stderr.write(`bundle-page: ${units} is missing; run tsc first\n`);
  process.exit(1);
}
let d3;
try {
  // The package exports only its entry points: its main module sits in dist/ beside the minified one.
  d3 = dirname(createRequire(import.meta.url).resolve('d3-hierarchy'));
} catch {
  process.stderr.write('bundle-page: d3-hierarchy is not installed (npm install); the page needs it\n');
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'vendor'), { recursive: true });
for (const f of readdirSync(src)) copyFileSync(join(src, f), join(out, f));
// Without its source map comment: the map stays in dist/, not among the page's files.
writeFileSync(join(out, 'units.js'), readFileSync(units, 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
copyFileSync(join(d3, 'd3-hierarchy.min.mjs'), join(out, 'vendor/d3-hierarchy.min.mjs'));
copyFileSync(join(d3, '..', 'LICENSE'), join(out, 'vendor/d3-hierarchy.LICENSE.txt'));
