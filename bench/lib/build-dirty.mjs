/**
 * Builds, in-process (library from dist/), a 1 TiB leaf `vm` over a
 * snapshot `vm@mon` where FRACTION of the blocks were written since: runs of
 * RUN bytes at seeded random RUN-aligned offsets, each run 16 distinct 4 KiB
 * blocks (so the maps are arrays of slots, as a guest's writes leave them,
 * while the store stays small). Goes through the ordinary write path.
 * argv: STORE SIZE FRACTION RUN; prints JSON { runs, changedBytes, ms } on stdout.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './tools.mjs';

const [store, sizeArg, fractionArg, runArg] = process.argv.slice(2);
const lib = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);
const { openStore } = await lib('store/core/store.js');
const { createImage, snapshotImage } = await lib('image/lifecycle.js');
const { openImage } = await lib('image/image.js');

const size = Number(sizeArg);
const run = Number(runArg);
const slots = size / run;
const want = Math.round((size * Number(fractionArg)) / run);
// mulberry32: the same offsets every run.
let seed = 0x5eed;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const chosen = new Set();
while (chosen.size < want) chosen.add(Math.floor(rand() * slots));
const buf = Buffer.alloc(run);
for (let k = 0; k < run / 4096; k++) buf.fill(1 + (k % 16), k * 4096, (k + 1) * 4096);

const t0 = performance.now();
const s = await openStore(store);
try {
  createImage(s, 'vm', size);
  snapshotImage(s, 'vm', 'mon');
  const img = openImage(s, 'vm', { writable: true, dirtyLimit: 256 * 1024 * 1024 });
  for (const r of [...chosen].sort((a, b) => a - b)) img.write(r * run, buf);
  img.close();
} finally {
  s.close();
}
process.stdout.write(JSON.stringify({ runs: want, changedBytes: want * run, ms: performance.now() - t0 }) + '\n');
