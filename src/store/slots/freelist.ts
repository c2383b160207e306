/**
 * The free list: slots below next_slot that no committed map references.
 *
 * Each free slot carries the free epoch of the transaction that freed it
 * (meta.free_epoch, raised by one per freeing transaction). A pinned lease
 * (leases.ts) remembers the epoch its view dates from; a slot freed in a
 * later epoch may still be named by what that holder has read, so it is
 * neither reused nor punched nor cut off until every such lease has ended.
 * That is how a reader of a leaf that another process is writing never reads
 * another image's bytes, and how check never sees a slot change under it.
 */
import { oldestPin } from '../leases/leases.js';
import { prepared } from '../core/statements.js';
import { metaNumber, setMeta } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { heldTx, sqlOf, type Reader, type WriteTx } from '../core/tx.js';

/** The current free epoch: what a lease taken now pins (leases.ts). */
export function freeEpoch(on: Reader): number {
  return metaNumber(on, 'free_epoch');
}

/**
 * Starts a new free epoch and returns it: what a transaction that frees
 * slots, or moves blocks out of places a reader may hold, stamps them with.
 */
export function newFreeEpoch(tx: WriteTx): number {
  const epoch = metaNumber(tx, 'free_epoch') + 1;
  setMeta(tx, 'free_epoch', epoch);
  return epoch;
}

/** Puts slots on the free list, stamped with a new epoch. */
export function freeSlots(tx: WriteTx, slots: readonly number[]): void {
  const db = sqlOf(tx);
  if (slots.length === 0) return;
  const epoch = newFreeEpoch(tx);
  const put = prepared(db, 'INSERT INTO free_slots(slot, epoch) VALUES (?, ?) ON CONFLICT(slot) DO UPDATE SET epoch = excluded.epoch');
  for (const s of slots) put.run(s, epoch);
}

/** The newest epoch whose free slots nobody can see any more. Call inside a write transaction. */
export function reusableEpoch(store: Store): number {
  return oldestPin(store) ?? Number.MAX_SAFE_INTEGER;
}

/** Takes up to `n` reusable free slots off the list, lowest first. Only inside a write transaction (it throws outside one). */
export function takeFreeSlots(store: Store, n: number): number[] {
  const limit = reusableEpoch(store);
  const db = sqlOf(heldTx(store));
  const slots = prepared(db, 'SELECT slot FROM free_slots WHERE epoch <= ? ORDER BY slot LIMIT ?').pluck().all(limit, n) as number[];
  const del = prepared(db, 'DELETE FROM free_slots WHERE slot = ?');
  for (const s of slots) del.run(s);
  return slots;
}
