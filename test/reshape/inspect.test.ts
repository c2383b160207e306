import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importFile } from '../../src/formats/files.js';
import { openImage } from '../../src/image/image.js';
import { diffImages, diskUsageOf, mapImage } from '../../src/image/inspect.js';
import { cloneImage, removeImages } from '../../src/image/lifecycle.js';
import { storeStats } from '../../src/image/usage.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { collectGarbage } from '../../src/store/upkeep/gc.js';
import { getImage } from '../../src/store/images/catalog.js';
import { countSlotRefs, segmentsOf } from '../../src/store/images/maps.js';
import { nativeStatus } from '../../src/store/blocks/native.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { distinctNonZeroBlocks, makeExt4Pair, tmpDir } from './fixture.js';
import { refcountOf } from '../helpers/slots.js';

const SLOT = 4096;

describe('inspect: stats, du, map, diff over two overlapping ext4 images', () => {
  let dir: string;
  let files: { a: string; b: string };
  let store: Store;

  beforeAll(async () => {
    dir = tmpDir('inspect');
    files = makeExt4Pair(dir);
    store = await openStore(path.join(dir, 'store'));
    importFile(store, files.a, 'a', { format: 'raw' });
    importFile(store, files.b, 'b', { format: 'raw' });
  });
  afterAll(() => {
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stats: stored bytes equal the distinct non-zero 4 KiB blocks of both files (sha256, computed here)', () => {
    const distinct = distinctNonZeroBlocks([files.a, files.b]);
    const s = storeStats(store);
    expect(s.storedBytes).toBe(distinct * SLOT);
    // The two images overlap: dedup must save something, and each image alone is less than both.
    expect(distinct).toBeLessThan(distinctNonZeroBlocks([files.a]) + distinctNonZeroBlocks([files.b]));
    expect(s.logicalBytes).toBe(fs.statSync(files.a).size + fs.statSync(files.b).size);
    expect(s.savings.zeroBytes + s.savings.layeringBytes + s.savings.dedupBytes).toBe(s.logicalBytes - s.storedBytes);
    expect(s.qcow2Bytes).toBeGreaterThanOrEqual(s.ownBytes);
    expect(s.qcow2Bytes % (64 * 1024)).toBe(0);
    expect(s.dataFiles.allocatedBytes).toBeGreaterThanOrEqual(s.storedBytes);
    expect(s.metadataBytes).toBeGreaterThan(0);
    expect(s.ratios.storedOfLogical).toBeCloseTo(s.storedBytes / s.logicalBytes, 9);
  });

  it('du: own = exclusive + shared for every image, with clones and a write that repeats one block', () => {
    cloneImage(store, 'b', ['vm1', 'vm2']);
    const img = openImage(store, 'vm1', { writable: true });
    const block = Buffer.alloc(SLOT, 0x5a);
    img.write(20 * 1024 * 1024, block);
    img.write(21 * 1024 * 1024, block); // the same slot twice in one map, nowhere else: exclusive
    img.close();
    const rows = diskUsageOf(store);
    expect(rows.map((r) => r.name).sort()).toEqual(['a', 'b', 'vm1', 'vm2']);
    for (const r of rows) expect(r.ownBytes).toBe(r.exclusiveBytes + r.sharedBytes);
    const vm1 = rows.find((r) => r.name === 'vm1')!;
    expect(vm1.ownBytes).toBe(2 * SLOT);
    expect(vm1.exclusiveBytes).toBe(2 * SLOT);
    expect(vm1.referencedBytes).toBe(rows.find((r) => r.name === 'b')!.referencedBytes + 2 * SLOT);
    expect(rows.find((r) => r.name === 'vm2')!.ownBytes).toBe(0);
  });

  it('map: extents cover the image, with the depth of the supplying layer', () => {
    const m = mapImage(store, 'vm1');
    expect(m.extents.reduce((s, e) => s + e.length, 0)).toBe(m.virtualSize);
    const at = (off: number) => m.extents.find((e) => e.offset <= off && off < e.offset + e.length)!;
    expect(at(20 * 1024 * 1024)).toMatchObject({ kind: 'data', depth: 0, layer: 'vm1' });
    expect(at(0)).toMatchObject({ kind: 'data', depth: 1, layer: 'b' }); // the superblock area comes from b
    for (let i = 1; i < m.extents.length; i++) expect(m.extents[i].offset).toBe(m.extents[i - 1].offset + m.extents[i - 1].length);
  });

  it('diff: from the maps, equal images have no extents, a written block shows up', () => {
    expect(diffImages(store, 'b', 'vm2').extents).toEqual([]);
    const d = diffImages(store, 'vm1', 'vm2');
    expect(d.extents).toEqual([
      { offset: 20 * 1024 * 1024, length: SLOT },
      { offset: 21 * 1024 * 1024, length: SLOT },
    ]);
    expect(diffImages(store, 'a', 'b').differingBytes).toBeGreaterThan(0);
  });

  const native = nativeStatus().mode === 'native';
  it(
    native
      ? 'gc after rm: allocated size of the data files falls by the removed image exclusive bytes (punch-hole)'
      : 'gc after rm (fallback, no punch-hole: tail truncation only): removing the image whose slots form the tail frees its exclusive bytes',
    () => {
      // b was imported last: its exclusive slots sit at the tail of the store. a's are inside.
      removeImages(store, ['vm1', 'vm2']);
      collectGarbage(store);
      const files = store.blocks.diskUsage().files;
      const victim = native ? 'a' : 'b';
      const excl = diskUsageOf(store, [victim])[0].exclusiveBytes;
      expect(excl).toBeGreaterThan(0);
      // What removal frees is the distinct slots only the victim references; exclusive
      // counts map entries, so a block repeated inside the image counts more than once.
      const refs = new Map<number, number>();
      for (const [, seg] of segmentsOf(store, getImage(store, victim).id)) countSlotRefs(seg, refs);
      const freedSlots = [...refs].filter(([slot, n]) => refcountOf(store, slot) === n).length;
      expect(freedSlots * SLOT).toBeLessThanOrEqual(excl);
      const before = store.blocks.diskUsage().allocated;
      removeImages(store, [victim]);
      const r = collectGarbage(store);
      const after = store.blocks.diskUsage().allocated;
      expect(r.reclaimedBytes).toBe(before - after);
      expect(Math.abs(before - after - freedSlots * SLOT)).toBeLessThanOrEqual(files * SLOT);
      expect(checkStore(store).status).toBe('clean');
      if (!native) {
        expect(r.punchSupported).toBe(false);
        expect(r.truncatedSlots).toBe(freedSlots);
        expect(r.truncatedSlots * SLOT).toBe(before - after);
      }
    },
  );
});
