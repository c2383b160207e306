/**
 * A remote layer's zero runs, checked against the local image it goes over.
 *
 * A canonical layer keeps a zero block only where its parent has data to
 * hide (layer-file.ts, layers.ts), so every block of a zero run lies in a
 * segment where the parent's chain has rows. Looking only there makes the
 * work of building a layer proportional to the parent's data, never to the
 * length a run claims: a 40-byte object whose one run says 2^32 zero blocks
 * costs one lookup, not 4 billion map entries.
 */
import { bucketCorrupt } from '../../errors.js';
import { chainOf, segmentNumbersOf, segGet } from '../../store/images/index.js';
import type { Store } from '../../store/core/index.js';
import { SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../../store/core/index.js';
import { resolveFrozen } from '../../image/resolve.js';
import { RUN_ZERO, type LayerMap } from '../objects/layer-file.js';

/** The first index of `sorted` whose value is at least `v`. */
function lowerBound(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The blocks `map`'s zero runs hide, by segment (offsets within it), over
 * `parent` (null: the layer is a base). E_CORRUPT naming the layer when a
 * zero run covers a block the parent has no data in: such an object is not
 * one strata writes.
 */
export function hiddenBlocks(store: Store, parent: ImageRecord | null, map: LayerMap, layer: string): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const zeroRuns = map.runs.filter((r) => r.kind === RUN_ZERO);
  if (zeroRuns.length === 0) return out;
  const bad = (why: string) => bucketCorrupt(`remote layer ${layer} is malformed: ${why} (not canonical)`, { layer });
  if (parent === null) throw bad('a base with zero runs');
  const chain = chainOf(store, parent);
  const segs = segmentNumbersOf(store, chain.map((r) => r.id));
  for (const run of zeroRuns) {
    const end = run.first + run.count;
    let hidden = 0;
    for (let k = lowerBound(segs, Math.floor(run.first / SEGMENT_ENTRIES)); k < segs.length && segs[k] * SEGMENT_ENTRIES < end; k++) {
      const seg = segs[k];
      const resolved = resolveFrozen(store, chain, 0, seg as SegmentIndex);
      const from = Math.max(run.first, seg * SEGMENT_ENTRIES) - seg * SEGMENT_ENTRIES;
      const to = Math.min(end, (seg + 1) * SEGMENT_ENTRIES) - seg * SEGMENT_ENTRIES;
      let list = out.get(seg);
      for (let i = from; i < to; i++) {
        if (segGet(resolved, i) < 2) throw bad(`zero run at block ${run.first} hides block ${seg * SEGMENT_ENTRIES + i}, which ${parent.name} has no data in`);
        if (!list) out.set(seg, (list = []));
        list.push(i);
      }
      hidden += to - from;
    }
    if (hidden !== run.count) throw bad(`zero run of ${run.count} blocks at block ${run.first} covers blocks ${parent.name} has no data in`);
  }
  return out;
}
