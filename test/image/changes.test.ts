/**
 * ChangedBlocks (what a qemu:dirty-bitmap: context reports) against `strata
 * diff` and against the bytes: over seeded random writes, zeroes and a
 * resize, for an ancestor snapshot and for a sibling that is no ancestor,
 * with unflushed writes, a shrink and a grow, unaligned ranges and a cap on
 * the number of runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChangedBlocks } from '../../src/image/changes.js';
import type { ChangeRun } from '../../src/image/device.js';
import { openImage, type Image } from '../../src/image/image.js';
import { diffImages } from '../../src/image/inspect.js';
import { cloneImage, createImage, snapshotImage } from '../../src/image/lifecycle.js';
import { resizeImage } from '../../src/image/reshape.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Three map segments (16 MiB each) and a partial fourth after the resize. */
const SIZE = 40 * MiB;
const GROWN = 52 * MiB + 3 * KiB;

const open: (Image | Store)[] = [];
afterEach(() => {
  for (const x of open.splice(0).reverse()) x.close();
});

/** Seeded writes: a few distinct 4 KiB patterns (so blocks recur and dedup), zeroes, unaligned edges. */
function scribble(img: Image, seed: number, count: number): void {
  const r = rng(seed);
  const patterns = [1, 2, 3, 4].map((b) => Buffer.alloc(4 * KiB, b));
  for (let k = 0; k < count; k++) {
    const block = r.int(Math.floor(img.size / (4 * KiB)) - 8);
    const n = 1 + r.int(8);
    const op = r.int(10);
    if (op < 2) img.writeZeroes(block * 4 * KiB, n * 4 * KiB);
    else if (op < 3) img.write(block * 4 * KiB + 100 + r.int(3000), Buffer.alloc(1 + r.int(200), 9));
    else img.write(block * 4 * KiB, Buffer.concat(Array.from({ length: n }, () => r.pick(patterns))));
  }
}

const changedOnly = (runs: ChangeRun[]) => runs.filter((x) => x.changed).map(({ offset, length }) => ({ offset, length }));

/** Runs tile the range in order, merged. */
function expectTiling(runs: ChangeRun[], offset: number, length: number): void {
  let at = offset;
  runs.forEach((x, i) => {
    expect(x.offset).toBe(at);
    expect(x.length).toBeGreaterThan(0);
    if (i > 0) expect(x.changed).not.toBe(runs[i - 1].changed);
    at += x.length;
  });
  expect(at).toBe(offset + length);
}

describe('ChangedBlocks: dirty bitmaps from the maps', () => {
  it('equal strata diff for an ancestor and for a sibling, unflushed writes count at once, clean blocks read the same bytes', async () => {
    const store = await openStore(tmpDir('strata-changes-'));
    open.push(store);
    createImage(store, 'vm', SIZE);
    let img = openImage(store, 'vm', { writable: true });
    scribble(img, 1, 300);
    img.close();
    snapshotImage(store, 'vm', 'mon');
    // A sibling line: mon's clone with writes of its own, frozen as o1.
    cloneImage(store, 'vm@mon', ['other']);
    img = openImage(store, 'other', { writable: true });
    scribble(img, 2, 100);
    img.close();
    snapshotImage(store, 'other', 'o1');
    // vm: writes, a snapshot in between (a layer above mon), resizes, more writes left unflushed.
    img = openImage(store, 'vm', { writable: true });
    scribble(img, 3, 100);
    img.close();
    snapshotImage(store, 'vm', 'tue');
    // Shrunk past data mon holds, then grown: that range reads zeros now, whatever the rows say.
    resizeImage(store, 'vm', 30 * MiB + 5 * KiB, { shrink: true });
    resizeImage(store, 'vm', GROWN);

    const vm = openImage(store, 'vm', { writable: true, dirtyLimit: 1 << 30 });
    open.push(vm);
    scribble(vm, 4, 60);
    const mon = openImage(store, 'vm@mon');
    const o1 = openImage(store, 'other@o1');
    open.push(mon, o1);
    const sinceMon = new ChangedBlocks(store, vm, mon);
    const sinceO1 = new ChangedBlocks(store, vm, o1);

    // Unflushed: a block rewritten with exactly mon's bytes is changed until the flush shows the map agrees.
    const probe = 20 * MiB;
    const monBytes = mon.read(probe, 4 * KiB);
    vm.write(probe, monBytes);
    expect(sinceMon.runs(probe, 4 * KiB, 10)).toEqual([{ offset: probe, length: 4 * KiB, changed: true }]);

    vm.flush();
    expect(sinceMon.runs(probe, 4 * KiB, 10)).toEqual([{ offset: probe, length: 4 * KiB, changed: false }]);
    const all = sinceMon.runs(0, GROWN, 1 << 20);
    expectTiling(all, 0, GROWN);
    expect(all.filter((x) => x.changed).length).toBeGreaterThan(10);

    // A snapshot of the flushed state: the bitmaps must say what strata diff says of it.
    vm.snapshot('now');
    expect(changedOnly(sinceMon.runs(0, GROWN, 1 << 20))).toEqual(diffImages(store, 'vm@mon', 'vm@now').extents);
    expect(changedOnly(sinceO1.runs(0, GROWN, 1 << 20))).toEqual(diffImages(store, 'other@o1', 'vm@now').extents);
    expect(sinceMon.runs(0, GROWN, 1 << 20)).toEqual(all);

    // Clean means the same bytes (past mon's end, mon reads as zeros).
    for (const x of all.filter((y) => !y.changed)) {
      const theirs = Buffer.alloc(x.length);
      if (x.offset < SIZE) mon.read(x.offset, Math.min(x.length, SIZE - x.offset)).copy(theirs);
      expect(vm.read(x.offset, x.length).equals(theirs)).toBe(true);
    }

    // An unaligned range gets the same answer, cut to it; a cap gives whole runs of a prefix.
    const [from, to] = [5 * MiB + 1234, 45 * MiB + 77];
    const cut = sinceMon.runs(from, to - from, 1 << 20);
    expectTiling(cut, from, to - from);
    const clip = (xs: ChangeRun[]) =>
      xs.flatMap((x) => {
        const s = Math.max(x.offset, from);
        const e = Math.min(x.offset + x.length, to);
        return e > s ? [{ offset: s, length: e - s, changed: x.changed }] : [];
      });
    expect(cut).toEqual(clip(all));
    expect(sinceMon.runs(0, GROWN, 7)).toEqual(all.slice(0, 7));
    expect(sinceMon.runs(0, GROWN, 1)).toEqual(all.slice(0, 1));
  });
});
