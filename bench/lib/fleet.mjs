/**
 * A store of many images made through the library (dist/), fast: clones are
 * metadata only, and the store is opened with durability 'unsafe' (nothing
 * synced: a fixture, not a measurement of writes).
 *
 * Shape: `bases` bases of 64 MiB with 256 KiB of data each (a quarter of it
 * the same in every base, so dedup has something to find), each with a chain
 * of `layers` frozen layers of 64 KiB of changes, and the rest of `count`
 * images as leaves cloned from the top layers; one leaf in ten writes 1-16
 * blocks of its own (some of them the same as another leaf's).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './tools.mjs';

const lib = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);

/** Deterministic bytes: block `n` of a stream seeded by `seed`. */
function block(seed, n) {
  const b = Buffer.alloc(4096);
  let x = (seed * 2654435761 + n * 40503 + 1) >>> 0;
  for (let i = 0; i < 4096; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

export async function makeFleet(dir, { count = 10_000, bases = 20, layers = 3 } = {}) {
  const { openStore } = await lib('store/core/store.js');
  const { createImage, cloneImage, freezeImage } = await lib('image/lifecycle.js');
  const { openImage } = await lib('image/image.js');
  const store = await openStore(dir, { durability: 'unsafe' });
  const write = (name, blocks) => {
    const img = openImage(store, name, { writable: true });
    try {
      for (const [offset, data] of blocks) img.write(offset, data);
    } finally {
      img.close();
    }
  };
  let made = 0;
  const tops = [];
  try {
    for (let b = 0; b < bases; b++) {
      const base = `base-${String(b).padStart(2, '0')}`;
      createImage(store, base, 64 * 2 ** 20);
      write(base, Array.from({ length: 64 }, (_, i) => [i * 4096 * 16, block(i < 16 ? 0 : b + 1, i)]));
      freezeImage(store, base);
      made++;
      let top = base;
      for (let l = 1; l <= layers && made < count; l++) {
        const layer = `${base}-l${l}`;
        cloneImage(store, top, [layer]);
        write(layer, Array.from({ length: 16 }, (_, i) => [(i * 7 + l) * 4096 * 9, block(1000 + b * 10 + l, i)]));
        freezeImage(store, layer);
        made++;
        top = layer;
      }
      tops.push(top);
    }
    const leaves = count - made;
    for (let t = 0; t < tops.length; t++) {
      const n = Math.floor(leaves / tops.length) + (t < leaves % tops.length ? 1 : 0);
      const names = Array.from({ length: n }, (_, i) => `vm-${String(t).padStart(2, '0')}-${String(i).padStart(4, '0')}`);
      for (let i = 0; i < names.length; i += 1000) cloneImage(store, tops[t], names.slice(i, i + 1000));
      for (let i = 0; i < names.length; i += 10) write(names[i], Array.from({ length: 1 + (i % 16) }, (_, k) => [k * 4096 * 3, block(k % 3 === 0 ? 7 : 5000 + t * 1000 + i, k)]));
      made += n;
    }
  } finally {
    store.close();
  }
  return made;
}
