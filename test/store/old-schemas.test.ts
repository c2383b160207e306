/**
 * What an old store migrates to, row by row. Migrations 3 and 6 carry their
 * own copy of the slot table's encoding (src/store/core/old-slot-table.ts),
 * so these rows are fixed: the live slot table must read them as the
 * refcounts, hashes and index they were, and a change to slots.ts that
 * reads them otherwise fails here.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/core/store.js';
import { indexLookup, slotReader, usedSlotCount } from '../../src/store/slots/slots.js';
import { tmpDir } from '../helpers/tmp.js';
import { sqlOf } from '../helpers/sql.js';

/** A new store's database turned back into schema `version`, by the SQL given. */
async function oldStore(version: number, sql: string): Promise<string> {
  const dir = tmpDir();
  (await openStore(dir)).close();
  const db = new Database(path.join(dir, 'strata.db'));
  db.exec(sql);
  db.pragma(`user_version = ${version}`);
  db.close();
  return dir;
}

const WIDE = 2 ** 32 + 5;

describe('old schemas', () => {
  it('schema 2: blocks rows become slot_refs, wide_refs, slot_hashes, the hash index and used_slots, and the slot table reads them back', async () => {
    const dir = await oldStore(
      2,
      `CREATE TABLE blocks (slot INTEGER PRIMARY KEY, hash INTEGER NOT NULL, refcount INTEGER NOT NULL CHECK (refcount > 0)) STRICT;
       INSERT INTO blocks VALUES (0, 111, 1), (1, 222, 2), (4097, 111, ${WIDE});
       DROP TABLE slot_refs; DROP TABLE wide_refs; DROP TABLE slot_hashes; DROP TABLE hash_index; DROP TABLE slot_locs; DROP TABLE remote_locs; DROP TABLE moved_places;
       DELETE FROM meta WHERE key IN ('used_slots', 'loc_seq', 'packed_blocks', 'packed_bytes', 'container_slots', 'compression', 'remote_blocks');`,
    );
    const store = await openStore(dir);
    try {
      const db = sqlOf(store);
      const refs = new Map((db.prepare('SELECT chunk, counts FROM slot_refs').raw().all() as [number, Buffer][]).map(([c, b]) => [c, b]));
      expect([...refs.keys()].sort()).toEqual([0, 1]);
      const countsOf = (b: Buffer) => new Uint32Array(Uint8Array.from(b).buffer);
      const [counts0, counts1] = [countsOf(refs.get(0)!), countsOf(refs.get(1)!)];
      expect(counts0.length).toBe(4096);
      expect([counts0[0], counts0[1], counts0[2]]).toEqual([1, 2, 0]);
      expect([counts1[0], counts1[1]]).toEqual([0, 0xffffffff]);
      expect(db.prepare('SELECT slot, refcount FROM wide_refs').raw().all()).toEqual([[4097, WIDE]]);
      expect(db.prepare('SELECT hash, slot FROM hash_index ORDER BY hash, slot').raw().all()).toEqual([[111, 0], [111, 4097], [222, 1]]);
      expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'blocks'").pluck().get()).toBe(0);
      const read = slotReader(store);
      expect([0, 1, 2, 4097].map((s) => read.refcount(s))).toEqual([1, 2, 0, WIDE]);
      expect([0, 1, 4097].map((s) => read.hash(s))).toEqual([111, 222, 111]);
      expect(usedSlotCount(store)).toBe(3);
      expect(indexLookup(store, [111, 222], 10)).toEqual(new Map([[111, [0, 4097]], [222, [1]]]));
    } finally {
      store.close();
    }
  });

  it('schema 5: live packed blocks get their old place recorded as due at once, containers and remote blocks do not', async () => {
    // Slot 0: a container; 1 and 2: packed into it (2 no longer live); 3: remote; 4: in its own place.
    const counts = new Uint32Array(4096);
    counts.set([2, 1, 0, 1, 1]);
    const locs = new Uint32Array(8192);
    locs.set([0xffffffff, 0, 1, 100, 1, 200, 0xfffffffe, 0, 0, 0]);
    const blob = (a: Uint32Array) => `x'${Buffer.from(a.buffer).toString('hex')}'`;
    const dir = await oldStore(5, `DROP TABLE moved_places; INSERT INTO slot_refs VALUES (0, ${blob(counts)}); INSERT INTO slot_locs VALUES (0, ${blob(locs)});`);
    const store = await openStore(dir);
    try {
      expect(sqlOf(store).prepare('SELECT slot, epoch FROM moved_places').raw().all()).toEqual([[1, 0]]);
    } finally {
      store.close();
    }
  });
});
