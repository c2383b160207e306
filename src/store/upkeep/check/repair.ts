/**
 * Check pass, last before the data: writes the slot-table repairs the
 * passes gathered, sets the packed counts from the repaired locations,
 * checks the count of slots in use against the refcounts, and puts the
 * slots repair freed on the free list.
 */
import { tallyLocation, type LocationTally } from '../../blocks/location.js';
import { setMeta } from '../../core/meta.js';
import { freeSlots } from '../../slots/freelist.js';
import { forEachLiveSlot, usedSlotCount } from '../../slots/slots.js';
import type { CheckContext } from './context.js';
import type { SlotsSeen } from './slots.js';

export function applyRepairs(cx: CheckContext, seen: SlotsSeen): void {
  const { store, tx, repair, fault, edit, toFree } = cx;
  const { liveCount } = seen;
  const counted = usedSlotCount(store);
  edit.commit();
  if (repair) {
    // What the locations say once the repairs above are in (freed leaks lost their fragments).
    const now: LocationTally = { packedBlocks: 0, packedBytes: 0, containers: 0, remote: 0 };
    forEachLiveSlot(store, (_slot, _rc, _hash, loc) => tallyLocation(now, loc, 1), { hashes: false });
    setMeta(tx, 'packed_blocks', now.packedBlocks);
    setMeta(tx, 'packed_bytes', now.packedBytes);
    setMeta(tx, 'container_slots', now.containers);
  }
  if (counted !== liveCount) {
    if (repair) setMeta(tx, 'used_slots', liveCount + (usedSlotCount(store) - counted));
    fault('leak', 'used-slots', `the store counts ${counted} slots in use, its refcounts say ${liveCount}`, repair);
  }

  freeSlots(tx, toFree);
}
