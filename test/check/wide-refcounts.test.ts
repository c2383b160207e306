/**
 * A slot may be referenced 2^32 times and more: an all-equal segment keeps
 * 4096 references in 4 bytes, so 16 TiB of one repeated block across clones
 * costs a few MiB of metadata. check and du must count such references
 * exactly. A 32-bit counter wraps: check --repair then sets the refcount to
 * the wrapped count, and the slot is freed while maps still use it.
 *
 * The store is built through the API (real slots with real hashes), then the
 * big image's map is widened with SQL: 2^20 all-equal segments of one slot.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/upkeep/check.js';
import { getImage } from '../../src/store/images/catalog.js';
import { loadSegment } from '../../src/store/images/maps.js';
import { segEncode, segGet } from '../../src/store/images/segment.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { SEGMENT_ENTRIES, type MapEntry, type SegmentIndex } from '../../src/store/core/types.js';
import { createImage } from '../../src/image/lifecycle.js';
import { openImage } from '../../src/image/image.js';
import { diskUsageOf } from '../../src/image/inspect.js';
import { strata } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { forceRefcount, refcountOf } from '../helpers/slots.js';
import { sqlOf } from '../helpers/sql.js';

const TWO32 = 2 ** 32;
const WIDE_SEGMENTS = TWO32 / SEGMENT_ENTRIES;

function writeBlock(store: Store, name: string, fill: number): MapEntry {
  const img = openImage(store, name, { writable: true });
  img.write(0, Buffer.alloc(4096, fill));
  img.close();
  const e = segGet(loadSegment(store, getImage(store, name).id, 0 as SegmentIndex), 0);
  expect(e).toBeGreaterThanOrEqual(2);
  return e;
}

/**
 * Slot X (0x5a) is referenced 2^32 times by big (every block of 2^20
 * all-equal segments) and once by small: refcount 2^32 + 1, which a 32-bit
 * count sees as 1. Slot Y (0x6b) is big's own, 3 times.
 */
async function wideStore(dir: string) {
  const store = await openStore(dir);
  createImage(store, 'big', (WIDE_SEGMENTS + 1) * SEGMENT_ENTRIES * 4096);
  createImage(store, 'small', 4096);
  const x = writeBlock(store, 'small', 0x5a);
  const y = writeBlock(store, 'big', 0x6b);
  const big = getImage(store, 'big');
  const tail = new Uint32Array(SEGMENT_ENTRIES).fill(y, 0, 3);
  store.write(() => {
    const db = sqlOf(store);
    db.prepare('DELETE FROM segments WHERE image_id = ?').run(big.id);
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
       INSERT INTO segments(image_id, seg, entries) SELECT ?, i, ? FROM n`,
    ).run(WIDE_SEGMENTS, big.id, segEncode(x));
    db.prepare('INSERT INTO segments(image_id, seg, entries) VALUES (?, ?, ?)').run(big.id, WIDE_SEGMENTS, segEncode(tail));
    forceRefcount(db, x - 2, TWO32 + 1);
    forceRefcount(db, y - 2, 3);
    db.prepare('UPDATE images SET own_blocks = ? WHERE id = ?').run(TWO32 + 3, big.id);
  });
  return { store, slotX: x - 2 };
}

describe('references past 2^32 to one slot', () => {
  it('check is clean and repair changes nothing; du calls the slot shared; removing one user keeps it', async () => {
    const dir = path.join(tmpDir(), 'st');
    const { store, slotX } = await wideStore(dir);
    try {
      const report = checkStore(store);
      expect(report.faults).toEqual([]);
      expect(report.status).toBe('clean');
      // Removing small alone frees nothing: big uses its block too.
      expect(diskUsageOf(store, ['small'])[0]).toMatchObject({ ownBytes: 4096, exclusiveBytes: 0, sharedBytes: 4096 });
    } finally {
      store.close();
    }

    const r = strata(dir, ['check', '--repair']);
    expect(r.stdout + r.stderr).toMatch(/No errors were found/);
    expect(r.status).toBe(0);
    expect(strata(dir, ['rm', 'small']).status).toBe(0);
    const after = await openStore(dir);
    try {
      expect(refcountOf(after, slotX)).toBe(TWO32);
      expect(sqlOf(after).prepare('SELECT count(*) FROM free_slots WHERE slot = ?').pluck().get(slotX)).toBe(0);
      expect(checkStore(after).status).toBe('clean');
      const big = openImage(after, 'big');
      try {
        expect(big.read((WIDE_SEGMENTS - 1) * SEGMENT_ENTRIES * 4096, 4096).equals(Buffer.alloc(4096, 0x5a))).toBe(true);
      } finally {
        big.close();
      }
    } finally {
      after.close();
    }
  });
});
