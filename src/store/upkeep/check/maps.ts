/**
 * Check pass: the maps. Counts the references to each slot (for the
 * refcount pass), and checks that no entry points past next_slot or at a
 * free slot, that no map rows belong to a missing image, and that each
 * image's own_blocks is the number of slots its map holds.
 */
import { segDecode } from '../../images/segment.js';
import { SEGMENT_ENTRIES } from '../../core/types.js';
import type { Catalog } from './catalog.js';
import type { CheckContext } from './context.js';

/** References per slot below next_slot. */
export function countReferences(cx: CheckContext, catalog: Catalog, free: Uint8Array): Float64Array {
  const { db, next, repair, fault } = cx;
  const { images, byId } = catalog;
  // Float64, not Uint32: one all-equal segment is 4096 references, so 2^32 of them to one slot is
  // only 16 TiB of a repeated block. A wrapped count would let repair free a slot in use.
  // Doubles count exactly up to 2^53.
  const refs = new Float64Array(next);
  /** Referenced slots on the free list, named once per image. */
  const freeHits = new Set<string>();
  const orphanImages = new Set<number>();
  const ownCounted = new Map<number, number>();
  const segRows = db.prepare('SELECT image_id, seg, entries FROM segments').raw().iterate() as IterableIterator<[number, number, Buffer]>;
  for (const [imageId, seg, blob] of segRows) {
    const img = byId.get(imageId);
    if (!img) {
      orphanImages.add(imageId);
      continue;
    }
    const s = segDecode(blob, `${img.name}/${seg}`);
    const base = seg * SEGMENT_ENTRIES;
    let own = 0;
    const visit = (e: number, i: number, times: number) => {
      const slot = e - 2;
      own += times;
      if (slot >= next) {
        fault('corruption', 'map-points-past-end', `image ${img.name} map entry at block ${base + i} points at slot ${slot}, past the end of the store (next_slot ${next})`);
        return;
      }
      refs[slot] += times;
      if (free[slot] && !freeHits.has(`${imageId}:${slot}`)) {
        freeHits.add(`${imageId}:${slot}`);
        // Marked repaired below, once the slot has been taken back from the free list.
        fault('corruption', 'map-points-at-free-slot', `image ${img.name} map entry at block ${base + i} points at free slot ${slot}`);
      }
    };
    if (typeof s === 'number') {
      if (s >= 2) visit(s, 0, SEGMENT_ENTRIES);
    } else {
      for (let i = 0; i < s.length; i++) if (s[i] >= 2) visit(s[i], i, 1);
    }
    ownCounted.set(imageId, (ownCounted.get(imageId) ?? 0) + own);
  }
  for (const id of orphanImages) {
    // Their references were not counted, so the refcount pass turns them into leaks to repair.
    if (repair) db.prepare('DELETE FROM segments WHERE image_id = ?').run(id);
    fault('leak', 'orphan-map', `map segments of missing image id ${id}`, repair);
  }
  for (const img of images) {
    const counted = ownCounted.get(img.id) ?? 0;
    if (counted !== img.own_blocks) {
      if (repair) db.prepare('UPDATE images SET own_blocks = ? WHERE id = ?').run(counted, img.id);
      fault('corruption', 'own-blocks', `image ${img.name}: own_blocks says ${img.own_blocks}, its map holds ${counted} slots`, repair);
    }
  }
  return refs;
}
