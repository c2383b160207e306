/**
 * Where two resolved segments differ in content, decided from the entries
 * alone: equal slot numbers mean equal content (the store keeps each distinct
 * block once), and a hole reads the same as ZERO. `strata diff` and the NBD
 * dirty bitmaps both ask this one function, so they always agree.
 */
import type { Segment } from '../store/images/index.js';

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
  // Typed-array loops, not segGet per entry: a 4 GiB BLOCK_STATUS compares a million entries.
  const differs = typeof a === 'number' ? uniformVsArray(readsAs(a), b as Uint32Array) : typeof b === 'number' ? uniformVsArray(readsAs(b), a) : arrayVsArray(a, b);
  let start = -1;
  for (let i = from; i < to; i++) {
    if (!differs(i)) {
      if (start >= 0) {
        emit(start, i);
        start = -1;
      }
    } else if (start < 0) start = i;
  }
  if (start >= 0) emit(start, to);
}

const uniformVsArray = (u: number, s: Uint32Array) => (i: number) => (s[i] < 2 ? 0 : s[i]) !== u;
const arrayVsArray = (a: Uint32Array, b: Uint32Array) => (i: number) => a[i] !== b[i] && (a[i] >= 2 || b[i] >= 2);
