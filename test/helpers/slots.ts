/**
 * The slot table as tests read and damage it: refcounts and hashes live in
 * arrays per 4096 slots (src/store/slots/slots.ts), not in one row per slot, so
 * tests go through the same functions strata uses.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { forEachLiveSlot, slotEditor } from '../../src/store/slots/slots.js';

export { refcountOf } from '../../src/store/slots/slots.js';

export interface SlotRow {
  slot: number;
  refcount: number;
  hash: number;
}

/** Every slot with a refcount above zero, in ascending order. */
export function liveSlots(db: Database.Database): SlotRow[] {
  const out: SlotRow[] = [];
  forEachLiveSlot(db, (slot, refcount, hash) => out.push({ slot, refcount, hash }));
  return out;
}

/** How many slots the store at `store` has in use, read from its database (read-only, beside any strata process). */
export function liveSlotCount(store: string): number {
  const db = new Database(path.join(store, 'strata.db'), { readonly: true });
  try {
    return liveSlots(db).length;
  } finally {
    db.close();
  }
}

/** Sets a slot's refcount behind strata's back (no free list, no counters): damage for check to find. */
export function forceRefcount(db: Database.Database, slot: number, refcount: number): void {
  db.transaction(() => {
    const used = db.prepare("SELECT value FROM meta WHERE key = 'used_slots'").pluck().get();
    const edit = slotEditor(db);
    edit.set(slot, refcount);
    edit.commit();
    db.prepare("UPDATE meta SET value = ? WHERE key = 'used_slots'").run(used);
  })();
}
