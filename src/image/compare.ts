/**
 * Where two resolved segments differ in content, decided from the entries
 * alone: equal slot numbers mean equal content (the store keeps each distinct
 * block once), and a hole reads the same as ZERO. `strata diff` and the NBD
 * dirty bitmaps both ask this one function, so they always agree.
 */
import { segGet, type Segment } from '../store/segment.js';

/** Zero-reading entries (hole and ZERO) compare equal; slots compare by number. */
const readsAs = (e: number): number => (e < 2 ? 0 : e);

/**
 * Calls `emit(start, end)` for each maximal run of entries in [from, to)
 * whose content differs between `a` and `b`, in order. The same object, or
 * two uniform segments, cost nothing per entry.
 */
export function differingRuns(a: Segment, b: Segment, from: number, to: number, emit: (start: number, end: number) => void): void {
  if (a === b || from >= to) return;
  if (typeof a === 'number' && typeof b === 'number') {
    if (readsAs(a) !== readsAs(b)) emit(from, to);
    return;
  }
  let start = -1;
  for (let i = from; i < to; i++) {
    const differs = readsAs(segGet(a, i)) !== readsAs(segGet(b, i));
    if (differs && start < 0) start = i;
    else if (!differs && start >= 0) {
      emit(start, i);
      start = -1;
    }
  }
  if (start >= 0) emit(start, to);
}
