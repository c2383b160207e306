/**
 * A map edit (src/store/images/map-edit.ts) is the one place that keeps the
 * rule the store rests on: a slot's refcount is the number of map entries
 * naming it, and an image's own-block count the number of its own entries
 * naming a slot. Callers only say what entries become. Whatever they say,
 * the store checks clean after the commit; what cannot be right (naming a
 * slot nothing holds) is refused and changes nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { createImage } from '../../src/image/lifecycle.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { editMap } from '../../src/store/images/map-edit.js';
import { getImage } from '../../src/store/images/catalog.js';
import { ownSlotRefs, segmentsOf } from '../../src/store/images/maps.js';
import { refcountOf } from '../../src/store/slots/slots.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { INHERIT, SEGMENT_ENTRIES, ZERO, slotEntry, type MapEntry, type SegmentIndex, type SlotNumber } from '../../src/store/core/types.js';
import { isStrataError } from '../../src/errors.js';
import { auditStore } from '../helpers/consistency.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const SEGS = 3;
const SIZE = SEGS * SEGMENT_ENTRIES * 4096;

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

/** A store with images a, b, c (edited by the tests) and src, whose blocks keep a reservoir of slots live. */
async function fixture(): Promise<Store> {
  const store = await openStore(tmpDir('strata-map-edit-'));
  stores.push(store);
  for (const n of ['a', 'b', 'c', 'src']) createImage(store, n, SIZE);
  const fill = (name: string, from: number, n: number) => {
    const img = openImage(store, name, { writable: true });
    for (let k = 0; k < n; k++) img.write(k * 4096 * 37, Buffer.alloc(4096, from + k));
    img.close();
  };
  fill('src', 1, 16); // live throughout: src is never edited
  fill('a', 101, 16); // live only while some map names them
  return store;
}

/** Own slot entries of an image's map, counted from its segments. */
function countedOwn(store: Store, name: string): number {
  let n = 0;
  for (const [, s] of segmentsOf(store, getImage(store, name).id)) {
    if (typeof s === 'number') n += s >= 2 ? SEGMENT_ENTRIES : 0;
    else for (const e of s) if (e >= 2) n++;
  }
  return n;
}

describe('map edits', () => {
  it('random edits over images that share slots leave every refcount and own-block count matching the maps', async () => {
    const store = await fixture();
    const slots = [...ownSlotRefs(store, ['src', 'a'].map((n) => getImage(store, n).id)).keys()];
    const r = rng(23);
    let freed = 0;
    for (let round = 0; round < 40; round++) {
      store.write((tx) => {
        const imgs = ['a', 'b', 'c'].map((n) => getImage(tx, n));
        const live = slots.filter((s) => refcountOf(tx, s) > 0);
        const entry = (): MapEntry => {
          const k = r.int(4);
          return k === 0 ? INHERIT : k === 1 ? ZERO : slotEntry(r.pick(live) as SlotNumber);
        };
        const edit = editMap(tx, r.pick(imgs));
        for (let op = 0; op < 5; op++) {
          const img = edit.of(r.pick(imgs));
          const seg = r.int(SEGS) as SegmentIndex;
          switch (r.int(6)) {
            case 0:
            case 1:
              for (let k = 0; k < 20; k++) img.set(r.int(SEGS * SEGMENT_ENTRIES), entry());
              break;
            case 2:
              img.setSegment(seg, entry()); // a whole segment of one entry: SEGMENT_ENTRIES references
              break;
            case 3: {
              const a = new Uint32Array(SEGMENT_ENTRIES);
              for (let i = 0; i < a.length; i += 1 + r.int(200)) a[i] = entry();
              img.setSegment(seg, a);
              break;
            }
            case 4:
              img.dropAll();
              break;
            default:
              img.copyOf(r.pick(imgs).id);
          }
        }
        edit.commit();
      });
      expect(auditStore(store)).toEqual([]);
      for (const n of ['a', 'b', 'c']) expect(getImage(store, n).ownBlocks).toBe(countedOwn(store, n));
      freed = slots.filter((s) => refcountOf(store, s) === 0).length;
    }
    const report = checkStore(store);
    expect(report.faults).toEqual([]);
    expect(report.status).toBe('clean');
    // The run also freed slots (every reference to them dropped), not only moved references around.
    expect(freed).toBeGreaterThan(0);
  });

  it("moves a slot's only reference from one image to another in one commit: the slot stays, nothing is freed", async () => {
    const store = await fixture();
    const a = getImage(store, 'a');
    const only = [...ownSlotRefs(store, [a.id]).keys()][0];
    expect(refcountOf(store, only)).toBe(1);
    const bytes = Buffer.alloc(4096);
    store.read(only as SlotNumber, 1, bytes, 0);
    store.write((tx) => {
      const edit = editMap(tx, getImage(tx, 'b'));
      edit.of(a).dropAll(); // the slot's count would reach 0 here if this were applied alone
      edit.set(5, slotEntry(only as SlotNumber));
      expect(edit.commit().ownBlocks).toBe(1);
    });
    expect(refcountOf(store, only)).toBe(1);
    expect(getImage(store, 'a').ownBlocks).toBe(0);
    const b = openImage(store, 'b');
    expect(b.read(5 * 4096, 4096).equals(bytes)).toBe(true);
    b.close();
    expect(auditStore(store)).toEqual([]);
  });

  it('an edit naming a slot that nothing references is refused with E_CORRUPT and changes nothing', async () => {
    const store = await fixture();
    const a = getImage(store, 'a');
    const gone = [...ownSlotRefs(store, [a.id]).keys()][0];
    store.write((tx) => {
      const edit = editMap(tx, a);
      edit.dropAll();
      edit.commit();
    });
    expect(refcountOf(store, gone)).toBe(0);
    const before = getImage(store, 'b');
    let err: unknown;
    try {
      store.write((tx) => {
        const edit = editMap(tx, before);
        edit.set(0, slotEntry(gone as SlotNumber));
        edit.commit();
      });
    } catch (e) {
      err = e;
    }
    expect(isStrataError(err, 'E_CORRUPT')).toBe(true);
    expect((err as Error).message).toBe(`map references slot ${gone}, whose refcount is 0`);
    expect([...segmentsOf(store, before.id)]).toEqual([]);
    expect(getImage(store, 'b')).toEqual(before);
    expect(refcountOf(store, gone)).toBe(0);
    expect(auditStore(store)).toEqual([]);
  });
});
