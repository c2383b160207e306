/**
 * The slot table (schema 3): refcounts and hashes as arrays per 4096 slots,
 * and the dedup index as a hint that may lag, miss rows or hold stale ones.
 *
 * - A store made by schema 2 (one `blocks` row per slot) is upgraded on open:
 *   same bytes, same refcounts, check clean, and its blocks still dedup.
 * - Index rows removed: nothing is wrong, identical data is only stored again.
 * - Index rows that lie (a slot with other bytes, a free slot): never shared.
 * - A wrong count of slots in use: check names it, --repair sets it right.
 * - An import's slots stay out of the index until its data is synced at
 *   finish, so no other image can come to share a slot a crash could void;
 *   after finish, they dedup.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { createImage } from '../../src/image/lifecycle.js';
import { beginImport } from '../../src/formats/import.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { collectGarbage } from '../../src/store/upkeep/gc.js';
import { getImage } from '../../src/store/images/catalog.js';
import { segmentsOf } from '../../src/store/images/maps.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { auditStore } from '../helpers/consistency.js';
import { liveSlots } from '../helpers/slots.js';
import { tmpDir } from '../helpers/tmp.js';
import { sqlOf } from '../helpers/sql.js';

const BLOCK = 4096;

function slotsOf(store: Store, name: string): Set<number> {
  const out = new Set<number>();
  for (const [, s] of segmentsOf(store, getImage(store, name).id)) {
    if (typeof s === 'number') {
      if (s >= 2) out.add(s - 2);
    } else for (const e of s) if (e >= 2) out.add(e - 2);
  }
  return out;
}

function writeImage(store: Store, name: string, data: Buffer): void {
  createImage(store, name, data.length);
  const img = openImage(store, name, { writable: true });
  img.write(0, data);
  img.close();
}

const indexRows = (store: Store) => sqlOf(store).prepare('SELECT count(*) FROM hash_index').pluck().get() as number;

describe('slot table', () => {
  it('a schema-2 store is upgraded on open: same bytes, same refcounts, check clean, and old blocks still dedup', async () => {
    const dir = tmpDir();
    const data = crypto.randomBytes(64 * BLOCK);
    let before: ReturnType<typeof liveSlots>;
    {
      const store = await openStore(dir);
      writeImage(store, 'a', data);
      writeImage(store, 'b', Buffer.concat([data.subarray(0, 32 * BLOCK), crypto.randomBytes(32 * BLOCK)]));
      before = liveSlots(store);
      store.close();
    }
    // Rewrite the metadata as schema 2 kept it: one blocks row per live slot, with its hash.
    const db = new Database(path.join(dir, 'strata.db'));
    db.exec(`
      CREATE TABLE blocks (slot INTEGER PRIMARY KEY, hash INTEGER NOT NULL, refcount INTEGER NOT NULL CHECK (refcount > 0)) STRICT;
      CREATE INDEX blocks_hash ON blocks(hash);`);
    const ins = db.prepare('INSERT INTO blocks(slot, hash, refcount) VALUES (?, ?, ?)');
    for (const r of before) ins.run(r.slot, r.hash, r.refcount);
    db.exec("DROP TABLE slot_refs; DROP TABLE wide_refs; DROP TABLE slot_hashes; DROP TABLE hash_index; DELETE FROM meta WHERE key IN ('used_slots', 'loc_seq', 'packed_blocks', 'packed_bytes', 'container_slots', 'compression', 'remote_blocks'); DROP TABLE slot_locs; DROP TABLE remote_locs; DROP TABLE moved_places");
    db.pragma('user_version = 2');
    db.close();

    const store = await openStore(dir);
    try {
      expect(sqlOf(store).pragma('user_version', { simple: true })).toBe(6);
      expect(liveSlots(store)).toEqual(before);
      expect(checkStore(store).status).toBe('clean');
      expect(openImage(store, 'a').read(0, data.length).equals(data)).toBe(true);
      // Old blocks are in the index: a third copy of a's data stores nothing new.
      writeImage(store, 'c', data);
      expect(liveSlots(store).length).toBe(before.length);
      expect(auditStore(store)).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('an index with rows missing: identical data is stored again, reads are right, check is clean', async () => {
    const store = await openStore(tmpDir());
    try {
      const data = crypto.randomBytes(16 * BLOCK);
      writeImage(store, 'a', data);
      store.write(() => sqlOf(store).prepare('DELETE FROM hash_index').run());
      writeImage(store, 'b', data);
      expect(liveSlots(store).length).toBe(32); // no dedup without the hint, and nothing worse
      expect(openImage(store, 'a').read(0, data.length).equals(data)).toBe(true);
      expect(openImage(store, 'b').read(0, data.length).equals(data)).toBe(true);
      expect(checkStore(store).status).toBe('clean');
      expect(auditStore(store)).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('index rows that lie (another slot, a free slot) are never followed; gc prunes them', async () => {
    const store = await openStore(tmpDir());
    try {
      const a = crypto.randomBytes(8 * BLOCK);
      const b = crypto.randomBytes(8 * BLOCK);
      writeImage(store, 'a', a);
      writeImage(store, 'gone', b);
      const goneSlots = [...slotsOf(store, 'gone')];
      const hashOf = (buf: Buffer) => store.hash(buf);
      // Remove 'gone': its slots are free, but its index rows stay (the index is pruned by gc, not rm).
      const { removeImages } = await import('../../src/image/lifecycle.js');
      removeImages(store, ['gone']);
      // And a row claiming a's first slot holds b's first block.
      const aSlot = Math.min(...slotsOf(store, 'a'));
      store.write(() => sqlOf(store).prepare('INSERT OR IGNORE INTO hash_index(hash, slot) VALUES (?, ?)').run(hashOf(b.subarray(0, BLOCK)), aSlot));
      writeImage(store, 'b', b);
      const bSlots = slotsOf(store, 'b');
      expect(bSlots.has(aSlot)).toBe(false);
      expect(openImage(store, 'a').read(0, a.length).equals(a)).toBe(true);
      expect(openImage(store, 'b').read(0, b.length).equals(b)).toBe(true);
      expect(auditStore(store)).toEqual([]);
      // Freed slots may be reused by b (same bytes, now counted again) or not: either way, gc leaves only true rows.
      const r = collectGarbage(store);
      expect(r.indexRowsPruned).toBeGreaterThanOrEqual(1);
      const rows = sqlOf(store).prepare('SELECT hash, slot FROM hash_index').raw().all() as [number, number][];
      const live = new Map(liveSlots(store).map((s) => [s.slot, s.hash]));
      for (const [h, s] of rows) expect(live.get(s)).toBe(h);
      expect(goneSlots.length).toBe(8);
      expect(checkStore(store).status).toBe('clean');
    } finally {
      store.close();
    }
  });

  it('a wrong count of slots in use is a leak that check names and --repair sets right', async () => {
    const store = await openStore(tmpDir());
    try {
      writeImage(store, 'a', crypto.randomBytes(16 * BLOCK));
      store.write(() => sqlOf(store).prepare("UPDATE meta SET value = 99 WHERE key = 'used_slots'").run());
      const r = checkStore(store);
      expect(r.status).toBe('leaks');
      expect(r.faults.map((f) => f.message)).toContain('the store counts 99 slots in use, its refcounts say 16');
      expect(checkStore(store, { repair: true }).repaired).toBe(1);
      expect(checkStore(store).status).toBe('clean');
      expect(sqlOf(store).prepare("SELECT value FROM meta WHERE key = 'used_slots'").pluck().get()).toBe(16);
    } finally {
      store.close();
    }
  });

  it("an import's slots are not shared until its data is synced at finish; then they dedup", async () => {
    const store = await openStore(tmpDir());
    try {
      const data = crypto.randomBytes(256 * BLOCK);
      const t = beginImport(store, 'imp', data.length, { dirtyLimit: 32 * BLOCK });
      t.img.write(0, data); // passes the dirty limit: flushed and committed, data not yet synced
      const hidden = getImage(store, t.img.record.name);
      const early = slotsOf(store, hidden.name);
      expect(early.size).toBeGreaterThan(0);
      const indexed = new Set(sqlOf(store).prepare('SELECT slot FROM hash_index').pluck().all() as number[]);
      for (const s of early) expect(indexed.has(s)).toBe(false);
      // Another image written now with the same bytes gets slots of its own.
      writeImage(store, 'other', data);
      for (const s of slotsOf(store, 'other')) expect(early.has(s)).toBe(false);
      t.finish();
      expect(indexRows(store)).toBeGreaterThanOrEqual(2 * 256);
      // After finish the import's blocks are found like any others: a third copy stores nothing.
      const n = liveSlots(store).length;
      writeImage(store, 'third', data);
      expect(liveSlots(store).length).toBe(n);
      expect(openImage(store, 'imp').read(0, data.length).equals(data)).toBe(true);
      expect(checkStore(store).status).toBe('clean');
    } finally {
      store.close();
    }
  });
});
