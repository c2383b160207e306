/**
 * In-process clone timing, run as a child so the harness's own heap does not
 * disturb it: imports the library from dist/, opens the store once, and times
 * each cloneImage call with process.hrtime after `warmup` untimed calls.
 * argv: STORE SOURCE RUNS WARMUP PREFIX  -> prints { samples: [ms...] } on stdout
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './tools.mjs';

const [store, source, runsArg, warmArg, prefix] = process.argv.slice(2);
const lib = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);
const { openStore } = await lib('store/core/store.js');
const { cloneImage } = await lib('image/lifecycle.js');

const s = await openStore(store);
const samples = [];
const runs = Number(runsArg);
const warm = Number(warmArg);
try {
  for (let i = 0; i < warm + runs; i++) {
    const t0 = process.hrtime.bigint();
    cloneImage(s, source, [`${prefix}${i}`]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i >= warm) samples.push(ms);
  }
} finally {
  s.close();
}
process.stdout.write(JSON.stringify({ samples }) + '\n');
