import { countSlotRefs, segmentsOf } from '../../src/store/images/maps.js';
import { listImages } from '../../src/store/images/catalog.js';
import type { Store } from '../../src/store/core/store.js';
import { liveSlots } from './slots.js';
import { forEachLiveSlot } from '../../src/store/slots/slots.js';
import { containersOf, unreachable } from '../../src/store/blocks/location.js';
import { sqlOf } from './sql.js';

/**
 * Independent recount of the store's bookkeeping: every refcount equals the
 * map references, no map points at a free or unknown slot, and every slot
 * below next_slot is either referenced or free. Returns the problems found.
 */
export function auditStore(store: Store): string[] {
  const refs = new Map<number, number>();
  for (const img of listImages(store)) for (const [, s] of segmentsOf(store, img.id)) countSlotRefs(s, refs);
  // A container slot's count is the live fragments packed in it (slot_locs), not map references.
  const containers = new Set<number>();
  forEachLiveSlot(store, (slot, _rc, _hash, loc) => {
    switch (loc.kind) {
      case 'container':
        containers.add(slot);
        break;
      case 'packed':
        // A fragment that runs past its first container's end counts in the next one too.
        for (const c of containersOf(loc)) refs.set(c, (refs.get(c) ?? 0) + 1);
        break;
      case 'own':
      case 'remote':
        break;
      default:
        unreachable(loc);
    }
  }, { hashes: false });
  const rows = new Map(liveSlots(store).map((r) => [r.slot, r.refcount]));
  const free = new Set(sqlOf(store).prepare('SELECT slot FROM free_slots').pluck().all() as number[]);
  const next = Number(sqlOf(store).prepare("SELECT value FROM meta WHERE key = 'next_slot'").pluck().get());
  const problems: string[] = [];
  for (const [slot, n] of refs) {
    if (rows.get(slot) !== n) problems.push(`slot ${slot}: refcount ${rows.get(slot)}, referenced ${n} times`);
    if (free.has(slot)) problems.push(`slot ${slot}: referenced but free`);
  }
  for (const slot of rows.keys()) if (!refs.has(slot)) problems.push(`slot ${slot}: has a row but no reference`);
  for (let s = 0; s < next; s++) if (!rows.has(s) && !free.has(s)) problems.push(`slot ${s}: leaked`);
  for (const s of free) if (s >= next) problems.push(`slot ${s}: free but beyond next_slot`);
  return problems;
}
