/**
 * Chain resolution: the view of an image with every INHERIT answered by the
 * layers below, one segment at a time. A resolved entry is 0 (hole: no layer
 * wrote it), 1 (ZERO) or a slot entry.
 *
 * Frozen images never change while anyone has them open, so their resolved
 * segments are cached per store under (id, generation, segment) and shared by
 * every handle; reading at chain depth 100 then costs what it costs at depth 1.
 */
import { INHERIT, SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../store/types.js';
import { loadSegment } from '../store/maps.js';
import { segExpand, segOverlay, type Segment } from '../store/segment.js';
import type { Store } from '../store/store.js';

export const blocksIn = (bytes: number): number => Math.ceil(bytes / 4096);

/** Entries past the image's end are holes, whatever the layers below say. */
function clip(s: Segment, seg: number, blocks: number): Segment {
  const first = seg * SEGMENT_ENTRIES;
  if (first + SEGMENT_ENTRIES <= blocks) return s;
  if (first >= blocks) return INHERIT;
  const out = typeof s === 'number' ? segExpand(s) : s.slice();
  out.fill(0, blocks - first);
  return out;
}

/** Resolved segment `seg` of chain[k..] (chain is nearest first). */
export function resolveFrozen(store: Store, chain: readonly ImageRecord[], k: number, seg: SegmentIndex): Segment {
  if (k >= chain.length) return INHERIT;
  const img = chain[k];
  const key = `${img.id}:${img.generation}:${seg}`;
  const hit = store.resolvedCache.get(key);
  if (hit !== undefined) return hit;
  const own = loadSegment(store.db, img.id, seg);
  const below = typeof own === 'number' && own !== INHERIT ? INHERIT : resolveFrozen(store, chain, k + 1, seg);
  const r = clip(segOverlay(own, below), seg, blocksIn(img.virtualSize));
  store.resolvedCache.set(key, r);
  return r;
}
