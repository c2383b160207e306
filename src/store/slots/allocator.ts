/**
 * Slot allocation. Runs only inside the write transaction that will commit
 * the references, so two processes can never be handed the same slot, and a
 * crash before the commit leaves the slots free, not leaked.
 *
 * Ordering invariant: a flush allocates before it applies decrements, so a
 * slot freed by a transaction is never reused by that same transaction (its
 * old contents must survive a rollback).
 */
import { StrataError } from '../../errors.js';
import { takeFreeSlots } from './freelist.js';
import { metaNumber, setMeta } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { MAX_SLOT, type SlotNumber } from '../core/types.js';
import { heldTx, type Reader } from '../core/tx.js';

/** The first slot past every slot ever handed out: the data files' extent, in slots. */
export function nextSlot(on: Reader): number {
  return metaNumber(on, 'next_slot');
}

/** Returns `n` free slots in ascending order, lowest first so new data lands in runs. */
export function allocateSlots(store: Store, n: number): SlotNumber[] {
  if (n === 0) return [];
  const tx = heldTx(store);
  const reused = takeFreeSlots(store, n);
  const fresh = n - reused.length;
  const next = metaNumber(tx, 'next_slot');
  if (next + fresh - 1 > MAX_SLOT) throw new StrataError('E_NO_SPACE', `store is full: more than ${MAX_SLOT + 1} distinct blocks`);
  const out = reused as SlotNumber[];
  for (let i = 0; i < fresh; i++) out.push((next + i) as SlotNumber);
  if (fresh > 0) setMeta(tx, 'next_slot', next + fresh);
  return out;
}

/**
 * `n` consecutive fresh slots past the end of the store: a run of containers
 * that fragments may cross from one slot into the next (locations.ts).
 */
export function allocateRun(store: Store, n: number): SlotNumber[] {
  if (n === 0) return [];
  const tx = heldTx(store);
  const next = metaNumber(tx, 'next_slot');
  if (next + n - 1 > MAX_SLOT) throw new StrataError('E_NO_SPACE', `store is full: more than ${MAX_SLOT + 1} distinct blocks`);
  setMeta(tx, 'next_slot', next + n);
  return Array.from({ length: n }, (_, i) => (next + i) as SlotNumber);
}
