/**
 * Check passes over the free list: which slots it holds (none at or past
 * next_slot), and, once the slots in use are known, that every slot below
 * next_slot is exactly one of in use or free and none past it is in use.
 */
import { BLOCK_SIZE, type SlotNumber } from '../../core/types.js';
import { indexSlots } from '../../slots/slots.js';
import type { CheckContext } from './context.js';
import { markFreeHitsRepaired } from './faults.js';
import type { SlotsSeen } from './slots.js';

/** The free list as a flag per slot below next_slot. */
export function readFreeList(cx: CheckContext): Uint8Array {
  const { db, next, repair, fault } = cx;
  const free = new Uint8Array(next);
  for (const slot of db.prepare('SELECT slot FROM free_slots').pluck().all() as number[]) {
    if (slot >= 0 && slot < next) free[slot] = 1;
    else {
      if (repair) db.prepare('DELETE FROM free_slots WHERE slot = ?').run(slot);
      fault('corruption', 'list-past-end', `slot ${slot}: on the free list but at or past next_slot ${next}`, repair);
    }
  }
  return free;
}

/** Slots with no refcount below next_slot (referenced ones are taken back, the others must be free), and slots with one past it. */
export function checkUnlisted(cx: CheckContext, refs: Float64Array, free: Uint8Array, seen: SlotsSeen): void {
  const { store, db, tx, next, repair, fault, faults, edit, toFree } = cx;
  const { beyond, live } = seen;
  const delFree = db.prepare('DELETE FROM free_slots WHERE slot = ?');
  for (const slot of beyond) {
    // A refcount past next_slot: the allocator could hand the slot out again.
    fault('corruption', 'list-past-end', `slot ${slot}: has a refcount but is at or past next_slot ${next}`);
  }
  const scratch = Buffer.allocUnsafe(BLOCK_SIZE);
  for (let slot = 0; slot < next; slot++) {
    if (live[slot]) continue;
    if (refs[slot] > 0) {
      // Referenced but counted 0: take it back from wherever it is, with the hash of what it holds now.
      let ok = true;
      if (repair) {
        try {
          store.readUnverified(slot as SlotNumber, 1, scratch, 0);
          delFree.run(slot);
          const hash = store.hash(scratch);
          edit.set(slot, refs[slot], hash);
          indexSlots(tx, [hash, slot]);
        } catch {
          ok = false;
        }
      }
      if (!free[slot]) fault('corruption', 'refcount-low', `slot ${slot}: refcount 0, maps reference it ${refs[slot]} times`, repair && ok);
      else markFreeHitsRepaired(faults, slot, repair && ok);
      continue;
    }
    if (!free[slot]) {
      if (repair) toFree.push(slot);
      fault('leak', 'lost-slot', `slot ${slot}: neither referenced nor on the free list`, repair);
    }
  }
}
