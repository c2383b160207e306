/**
 * Builds a strata chain in-process (library from dist/): import BASE as
 * `base`, clone it to the leaf `top`, then for i = 1..DEPTH-1 write 4 KiB of
 * byte i at offsetOf(i) into `top` and snapshot it as `top@l<i>`. The image at
 * chain depth k is `l<k-1>` (depth 1 is `base`).
 * argv: STORE BASEFILE DEPTH
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './tools.mjs';
import { layerOffset } from './chain-layout.mjs';

const [store, baseFile, depthArg] = process.argv.slice(2);
const lib = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);
const { openStore } = await lib('store/core/store.js');
const { cloneImage, snapshotImage } = await lib('image/lifecycle.js');
const { openImage } = await lib('image/image.js');
const { importFile } = await lib('formats/files.js');

const s = await openStore(store);
try {
  const base = importFile(s, baseFile, 'base', {});
  cloneImage(s, 'base', ['top']);
  for (let i = 1; i < Number(depthArg); i++) {
    const img = openImage(s, 'top', { writable: true });
    img.write(layerOffset(i, base.virtualSize), Buffer.alloc(4096, i));
    img.close();
    snapshotImage(s, 'top', `l${i}`);
  }
} finally {
  s.close();
}
