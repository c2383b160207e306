/**
 * Which slots open images may be reading: what moves and evictions keep
 * away from. A holder (a server, a reader) may have cached a block's
 * location (locations.ts); if the block moved or left under it, it would
 * read the old place. So nothing that changes a location touches a slot
 * any leased image's chain references, and a store-wide lease (a running
 * check, which reads every slot) stops them all.
 */
import { chainOf, getImageById } from '../images/catalog.js';
import { leasedImageIds, STORE_LEASE } from './leases.js';
import { segmentsOf } from '../images/maps.js';
import type { Store } from '../core/store.js';
import type { ImageId, ImageRecord } from '../core/types.js';

/** Marks in `into` every slot the images' own maps reference. */
export function markSlotsOf(store: Store, ids: Iterable<ImageId>, into: Uint8Array): void {
  for (const id of ids) {
    for (const [, seg] of segmentsOf(store, id)) {
      if (typeof seg === 'number') {
        if (seg >= 2 && seg - 2 < into.length) into[seg - 2] = 1;
        continue;
      }
      for (let i = 0; i < seg.length; i++) {
        const e = seg[i];
        if (e >= 2 && e - 2 < into.length) into[e - 2] = 1;
      }
    }
  }
}

/** Slots that open images may be reading (null: a store-wide lease; move nothing). Inside a write transaction. */
export function busySlots(store: Store, next: number): Uint8Array | null {
  const ids = leasedImageIds(store);
  if (ids.includes(STORE_LEASE)) return null;
  const chains = new Set<ImageId>();
  for (const id of ids) {
    let rec: ImageRecord;
    try {
      rec = getImageById(store, id);
    } catch {
      continue; // an image removed under a lease row not yet cleaned up
    }
    for (const r of chainOf(store, rec)) chains.add(r.id);
  }
  const busy = new Uint8Array(next);
  markSlotsOf(store, chains, busy);
  return busy;
}
