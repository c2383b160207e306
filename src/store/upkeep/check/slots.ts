/**
 * Check pass: each live slot, one at a time. Its refcount equals the map
 * references to it (a container's is checked by containers.ts); a
 * compressed block's fragment is a fragment of one block; a remote block
 * has its remote place recorded; a referenced slot is not on the free list.
 * Gathers what the later passes need: the slots to verify and their hashes,
 * the containers and the fragments packed into them.
 */
import { dropRemoteLoc, remotePlacesOf } from '../../blocks/remote-locs.js';
import { OWN, containersOf, inRemotePack, unreachable } from '../../blocks/location.js';
import { BLOCK_SIZE } from '../../core/types.js';
import { forEachLiveSlot } from '../../slots/slots.js';
import type { CheckContext } from './context.js';
import { markFreeHitsRepaired } from './faults.js';

export interface SlotsSeen {
  /** 1 for each slot below next_slot that has a refcount. */
  live: Uint8Array;
  /** Slots whose bytes are local, to verify, in order. */
  inUse: number[];
  /** The hash recorded for each referenced slot. */
  hashes: Map<number, number>;
  /** Slots with a refcount at or past next_slot. */
  beyond: number[];
  /** Slots with a refcount, wherever they are. */
  liveCount: number;
  /** Containers with their refcount, and the live fragments counted in each. */
  containers: Map<number, number>;
  fragmentsIn: Map<number, number>;
  packedSeen: { packedBlocks: number; packedBytes: number; containers: number };
  /** Pairs (packed slot, container it names). */
  packedAt: number[];
}

export function checkSlots(cx: CheckContext, refs: Float64Array, free: Uint8Array): SlotsSeen {
  const { store, db, tx, next, repair, fault, faults, edit, toFree } = cx;
  const delFree = db.prepare('DELETE FROM free_slots WHERE slot = ?');
  const live = new Uint8Array(next);
  const inUse: number[] = [];
  const hashes = new Map<number, number>();
  const beyond: number[] = [];
  let liveCount = 0;
  /** Containers with their refcount, and the live fragments counted in each. */
  const containers = new Map<number, number>();
  const fragmentsIn = new Map<number, number>();
  const packedSeen = { packedBlocks: 0, packedBytes: 0, containers: 0 };
  const packedAt: number[] = [];
  forEachLiveSlot(store, (slot, rc, hash, loc) => {
    liveCount++;
    if (slot >= next) {
      beyond.push(slot);
      return;
    }
    live[slot] = 1;
    const n = refs[slot];
    switch (loc.kind) {
      case 'container':
        containers.set(slot, rc);
        packedSeen.containers++;
        if (n > 0) fault('corruption', 'bad-location', `slot ${slot} holds packed fragments, yet maps reference it ${n} times`);
        return;
      case 'packed':
        if (n === 0) break;
        if (loc.length === 0 || loc.length > BLOCK_SIZE) {
          fault('corruption', 'bad-location', `slot ${slot}: its fragment (offset ${loc.offset}, ${loc.length} bytes) is not a fragment of one block`);
        }
        // One that runs on into the next slot needs it to be a container too, counting it as well.
        for (const c of containersOf(loc)) {
          fragmentsIn.set(c, (fragmentsIn.get(c) ?? 0) + 1);
          packedAt.push(slot, c);
        }
        packedSeen.packedBlocks++;
        packedSeen.packedBytes += loc.length;
        break;
      case 'own':
      case 'remote':
        break;
      default:
        unreachable(loc);
    }
    if (n === 0) {
      if (repair) {
        edit.set(slot, 0);
        edit.setLoc(slot, OWN);
        if (inRemotePack(loc)) dropRemoteLoc(tx, slot);
        toFree.push(slot);
      }
      fault('leak', 'refcount-high', `slot ${slot}: refcount ${rc}, maps reference it 0 times`, repair);
      return;
    }
    if (inRemotePack(loc)) {
      // Still in a remote pack (a lazy clone's): no bytes here to verify; its place must be recorded.
      if (remotePlacesOf(store, [slot]).size === 0) fault('corruption', 'bad-location', `slot ${slot}: its location says remote, but no remote place is recorded`);
    } else inUse.push(slot);
    hashes.set(slot, hash);
    if (rc !== n) {
      if (repair) edit.set(slot, n);
      if (rc > n) fault('leak', 'refcount-high', `slot ${slot}: refcount ${rc}, maps reference it ${n} times`, repair);
      else fault('corruption', 'refcount-low', `slot ${slot}: refcount ${rc}, maps reference it ${n} times`, repair);
    }
    if (free[slot]) {
      // Named by the map pass (map-points-at-free-slot); leaving the free list is the repair.
      if (repair) delFree.run(slot);
      markFreeHitsRepaired(faults, slot, repair);
    }
  });
  return { live, inUse, hashes, beyond, liveCount, containers, fragmentsIn, packedSeen, packedAt };
}
