/**
 * Chain resolution: the view of an image with every INHERIT answered by the
 * layers below, one segment at a time. A resolved entry is 0 (hole: no layer
 * wrote it), 1 (ZERO) or a slot entry.
 *
 * Frozen images never change while anyone has them open, so their resolved
 * segments are cached per store under (id, generation, segment) and shared by
 * every handle; reading at chain depth 100 then costs what it costs at depth 1.
 */
import { INHERIT, SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../store/core/index.js';
import { loadSegment, loadSegmentOfEach, segExpand, segOverlay, type Segment } from '../store/images/index.js';
import type { Store } from '../store/core/index.js';

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

/**
 * Resolved segment `seg` of chain[k..] (chain is nearest first).
 *
 * Walks down only to the first layer already resolved in the cache, reads
 * the own segments of the layers above it with one query, and caches only
 * the result for chain[k]: at depth 100 a segment costs one query and one
 * overlay per layer that has rows, not a query and a cached copy per layer.
 */
export function resolveFrozen(store: Store, chain: readonly ImageRecord[], k: number, seg: SegmentIndex): Segment {
  if (k >= chain.length) return INHERIT;
  const keyOf = (img: ImageRecord) => `${img.id}:${img.generation}:${seg}`;
  const top = store.resolvedCache.get(keyOf(chain[k]));
  if (top !== undefined) return top;
  let stop = chain.length;
  let below: Segment = INHERIT;
  for (let j = k + 1; j < chain.length; j++) {
    const hit = store.resolvedCache.get(keyOf(chain[j]));
    if (hit !== undefined) {
      stop = j;
      below = hit;
      break;
    }
  }
  const layers = chain.slice(k, stop);
  const own = layers.length === 1 ? [loadSegment(store, layers[0].id, seg)] : loadSegmentOfEach(store, layers.map((l) => l.id), seg);
  // A uniform own segment (all ZERO or all one slot) hides everything below it.
  let start = own.findIndex((o) => typeof o === 'number' && o !== INHERIT);
  if (start === -1) start = own.length - 1;
  else below = INHERIT;
  let r = below;
  for (let j = start; j >= 0; j--) r = clip(segOverlay(own[j], r), seg, blocksIn(layers[j].virtualSize));
  store.resolvedCache.set(keyOf(chain[k]), r);
  return r;
}
