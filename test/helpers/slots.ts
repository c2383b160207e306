/**
 * The slot table as tests read and damage it: refcounts and hashes live in
 * arrays per 4096 slots (src/store/slots/slots.ts), not in one row per slot, so
 * tests go through the same functions strata uses.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { forEachLiveSlot, slotEditor } from '../../src/store/slots/slots.js';
import { readerOn, sqlOf, writeTxOn, type Reader } from '../../src/store/core/tx.js';

/** A store, or a connection a test opened on a store's strata.db itself (beside a strata process, or to damage it). */
export type StoreOrDb = Reader | Database.Database;
const connOf = (on: StoreOrDb): Database.Database => (on instanceof Database ? on : sqlOf(on));

export { refcountOf } from '../../src/store/slots/slots.js';

export interface SlotRow {
  slot: number;
  refcount: number;
  hash: number;
}

/** Every slot with a refcount above zero, in ascending order. */
export function liveSlots(on: StoreOrDb): SlotRow[] {
  const out: SlotRow[] = [];
  forEachLiveSlot(readerOn(connOf(on)), (slot, refcount, hash) => out.push({ slot, refcount, hash }));
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
export function forceRefcount(on: StoreOrDb, slot: number, refcount: number): void {
  const db = connOf(on);
  db.transaction(() => {
    const used = db.prepare("SELECT value FROM meta WHERE key = 'used_slots'").pluck().get();
    const edit = slotEditor(writeTxOn(db));
    edit.set(slot, refcount);
    edit.commit();
    db.prepare("UPDATE meta SET value = ? WHERE key = 'used_slots'").run(used);
  })();
}
