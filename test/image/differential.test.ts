/**
 * Differential test: strata images against plain in-memory raw models, put
 * through the same seeded random operations (unaligned writes, write-zeroes,
 * discards, flushes, clones, snapshots, freezes, removals, reopenings).
 */
import { describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/core/store.js';
import { openImage, type Image } from '../../src/image/image.js';
import { cloneImage, createImage, freezeImage, removeImages, snapshotImage } from '../../src/image/lifecycle.js';
import { childrenOf, getImage, listImages } from '../../src/store/images/catalog.js';
import { auditStore } from '../helpers/consistency.js';
import { compressStored } from '../../src/store/upkeep/relocate.js';
import { collectGarbage } from '../../src/store/upkeep/gc.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';
import { sqlOf } from '../helpers/sql.js';

const OPS = Number(process.env.STRATA_DIFF_OPS ?? 20_000);
// Each seed runs for minutes on a slow 2-core machine; the budget is generous on purpose.

interface Model {
  data: Buffer;
  frozen: boolean;
}

/** With `compress`, frozen images' blocks are compressed (and gc repacks) now and then, and data is text-like. */
function runDifferential(seed: number, store: Store, opts: { ops?: number; compress?: boolean } = {}) {
  const ops = opts.ops ?? OPS;
  const r = rng(seed);
  const models = new Map<string, Model>();
  const handles = new Map<string, Image>();
  let counter = 0;
  const counts: Record<string, number> = {};
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);

  const handle = (name: string): Image => {
    let h = handles.get(name);
    if (!h) {
      h = openImage(store, name, { writable: !models.get(name)!.frozen, dirtyLimit: 1 << 20 });
      handles.set(name, h);
    }
    return h;
  };
  const closeHandle = (name: string) => {
    handles.get(name)?.close();
    handles.delete(name);
  };
  const closeAll = () => [...handles.keys()].forEach(closeHandle);

  // Sizes not multiple of 4096 exercise the partial last block.
  for (const [name, size] of [['a', 3 * 1024 * 1024 + 512], ['b', 1024 * 1024], ['c', 2 * 1024 * 1024 + 100]] as const) {
    createImage(store, name, size);
    models.set(name, { data: Buffer.alloc(size), frozen: false });
  }

  for (let op = 0; op < ops; op++) {
    const names = [...models.keys()];
    const leaves = names.filter((n) => !models.get(n)!.frozen);
    const x = r.next();
    if (x < 0.5 && leaves.length) {
      const name = r.pick(leaves);
      const m = models.get(name)!;
      const len = 1 + r.int(r.next() < 0.2 ? 40_000 : 9000);
      const off = r.int(m.data.length - len);
      // Mostly a few distinct patterns so that dedup is exercised, sometimes random bytes.
      const y = r.next();
      const data = y < 0.7 ? Buffer.alloc(len, 1 + r.int(4)) : opts.compress && y < 0.9 ? r.text(len) : r.bytes(len);
      handle(name).write(off, data);
      data.copy(m.data, off);
      count('write');
    } else if (x < 0.62 && leaves.length) {
      const name = r.pick(leaves);
      const m = models.get(name)!;
      const len = 1 + r.int(r.next() < 0.1 ? m.data.length : 20_000);
      const off = r.int(m.data.length - len + 1);
      if (r.next() < 0.5) handle(name).writeZeroes(off, len);
      else handle(name).discard(off, len);
      m.data.fill(0, off, off + len);
      count('zero');
    } else if (x < 0.72) {
      const name = r.pick(names);
      const m = models.get(name)!;
      const len = 1 + r.int(Math.min(m.data.length, 30_000));
      const off = r.int(m.data.length - len + 1);
      expect(handle(name).read(off, len).equals(m.data.subarray(off, off + len)), `read ${name} ${off}+${len} at op ${op}`).toBe(true);
      count('read');
    } else if (x < 0.8 && leaves.length) {
      handle(r.pick(leaves)).flush();
      count('flush');
    } else if (x < 0.84 && names.length < 14) {
      const src = r.pick(names);
      const fresh = `i${++counter}`;
      closeHandle(src);
      const res = cloneImage(store, src, [fresh]);
      if (res.snapshot) models.set(res.snapshot.name, { data: Buffer.from(models.get(src)!.data), frozen: true });
      models.set(fresh, { data: Buffer.from(models.get(src)!.data), frozen: false });
      count('clone');
    } else if (x < 0.86 && leaves.length) {
      const leaf = r.pick(leaves);
      closeHandle(leaf);
      const snap = snapshotImage(store, leaf, `s${++counter}`);
      models.set(snap.snapshot.name, { data: Buffer.from(models.get(leaf)!.data), frozen: true });
      count('snapshot');
    } else if (x < 0.87 && leaves.length > 2) {
      const leaf = r.pick(leaves);
      closeHandle(leaf);
      freezeImage(store, leaf);
      models.get(leaf)!.frozen = true;
      count('freeze');
    } else if (x < 0.9 && names.length > 3) {
      // Remove an image without children.
      // Keep at least two leaves, so writes go on.
      const childless = names.filter((n) => childrenOf(store, getImage(store, n).id).length === 0 && (models.get(n)!.frozen || leaves.length > 2));
      if (childless.length > 0) {
        const victim = r.pick(childless);
        closeHandle(victim);
        removeImages(store, [victim]);
        models.delete(victim);
        count('rm');
      }
    } else if (opts.compress && x < 0.91) {
      // Blocks of frozen images move into containers; those of images still open stay (busy).
      if (r.next() < 0.5) closeAll();
      const y = r.next();
      compressStored(store, y < 0.6 ? { codec: 'zstd', level: 1 } : y < 0.9 ? { codec: 'lz4', level: 1 } : null);
      if (r.next() < 0.3) collectGarbage(store);
      count('compress');
    } else if (x < 0.95) {
      const name = r.pick(names);
      // Dropping a handle without flush loses its unflushed writes, like a crash: flush first.
      closeHandle(name);
      count('reopen');
    } else if (leaves.length) {
      const name = r.pick(leaves);
      const m = models.get(name)!;
      const off = r.int(m.data.length);
      const len = Math.min(m.data.length - off, 4096 * (1 + r.int(8)));
      handle(name).write(off, m.data.subarray(off, off + len)); // rewrite identical bytes
      count('rewrite');
    }
  }
  closeAll();
  return { models, counts };
}

function assertAllMatch(store: Store, models: Map<string, Model>) {
  const names = listImages(store).map((i) => i.name).sort();
  expect(names).toEqual([...models.keys()].sort());
  for (const [name, m] of models) {
    const img = openImage(store, name);
    expect(img.size).toBe(m.data.length);
    expect(img.read(0, img.size).equals(m.data), `image ${name} differs from its model`).toBe(true);
    img.close();
  }
}

describe('images against raw-file models', () => {
  for (const seed of [1]) {
    it(`match after ${OPS} random operations (seed ${seed}), and after reopening the store`, { timeout: 600_000 }, async () => {
      const dir = tmpDir();
      const store = await openStore(dir, { durability: 'unsafe' });
      const { models, counts } = runDifferential(seed, store);
      expect(counts.write).toBeGreaterThan(OPS / 3);
      expect(counts.clone).toBeGreaterThan(5);
      assertAllMatch(store, models);
      expect(auditStore(store)).toEqual([]);
      store.close();

      const again = await openStore(dir);
      assertAllMatch(again, models);
      expect(auditStore(again)).toEqual([]);
      again.close();
    });
  }

  it('match with compressed blocks: frozen images compressed and repacked between the operations (seed 2)', { timeout: 600_000 }, async () => {
    const dir = tmpDir();
    const store = await openStore(dir, { durability: 'unsafe' });
    const { models, counts } = runDifferential(2, store, { ops: Math.min(OPS, 8000), compress: true });
    expect(counts.compress).toBeGreaterThan(20);
    assertAllMatch(store, models);
    expect(auditStore(store)).toEqual([]);
    expect(checkStore(store).status).toBe('clean');
    const packed = sqlOf(store).prepare("SELECT value FROM meta WHERE key = 'packed_blocks'").pluck().get() as number;
    expect(packed).toBeGreaterThan(0);
    store.close();
    const again = await openStore(dir);
    assertAllMatch(again, models);
    again.close();
  });
});
