/**
 * A writer keeps at most about a thousand of its own map segments loaded and
 * drops the clean ones past that (a server walking a 1 TiB leaf's map once
 * kept them all, over 1 GiB). What it drops must never be what it changed
 * and has not flushed: those live only in memory.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openImage, type Image } from '../../src/image/image.js';
import { createImage } from '../../src/image/lifecycle.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { tmpDir } from '../helpers/tmp.js';

const SEGMENT_BYTES = 4096 * 4096;
const SEGMENTS = 1300;

const open: (Image | Store)[] = [];
afterEach(() => {
  for (const x of open.splice(0).reverse()) x.close();
});

const blockOf = (k: number) => Buffer.alloc(4096, (k % 250) + 1);

describe('a writer\'s own-segment cache', () => {
  it('unflushed zeroing and writes survive reads across more segments than it keeps; reads stay right', async () => {
    const store = await openStore(tmpDir('strata-own-cache-'));
    open.push(store);
    createImage(store, 'vm', SEGMENTS * SEGMENT_BYTES);
    const first = openImage(store, 'vm', { writable: true, dirtyLimit: 1 << 30 });
    for (let k = 0; k < SEGMENTS; k++) first.write(k * SEGMENT_BYTES, blockOf(k));
    first.close();
    // A fresh writer, which loads its own segments as it reads them.
    const img = openImage(store, 'vm', { writable: true, dirtyLimit: 1 << 30 });
    open.push(img);
    // Unflushed: zeroes over segment 0's block (an own-map change) and new data in segment 1.
    img.writeZeroes(0, 4096);
    img.write(SEGMENT_BYTES, Buffer.alloc(4096, 0xee));
    for (let k = 2; k < SEGMENTS; k++) expect(img.read(k * SEGMENT_BYTES, 4096).equals(blockOf(k))).toBe(true);
    expect(img.read(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(img.read(SEGMENT_BYTES, 4096).equals(Buffer.alloc(4096, 0xee))).toBe(true);
    img.close();
    open.pop();

    const again = openImage(store, 'vm');
    open.push(again);
    expect(again.read(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(again.read(SEGMENT_BYTES, 4096).equals(Buffer.alloc(4096, 0xee))).toBe(true);
    expect(again.read((SEGMENTS - 1) * SEGMENT_BYTES, 4096).equals(blockOf(SEGMENTS - 1))).toBe(true);
  });
});
