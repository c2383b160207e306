/**
 * The blocks of an open image whose content may differ from a frozen
 * image's: what an NBD `qemu:dirty-bitmap:` context reports, the way
 * `strata diff` would report it at this instant (the same comparison,
 * compare.ts), with the writes the open image has not flushed yet counted
 * as changed at once.
 *
 * Fast because it works per map segment: a segment that no layer of either
 * chain above their common ancestor has a row for resolves to the same
 * entries on both sides, so it is unchanged without looking at an entry. For
 * a leaf over its snapshot those layers are the leaf itself and the
 * snapshots taken since; one indexed query per request finds their rows.
 */
import { BLOCK_SIZE, SEGMENT_ENTRIES, type ImageRecord } from '../store/core/index.js';
import { segmentNumbersIn } from '../store/images/index.js';
import type { Store } from '../store/core/index.js';
import { differingRuns } from './compare.js';
import type { ChangeRun, ChangeTracker } from './device.js';
import type { Image } from './image.js';

const SEGMENT_BYTES = SEGMENT_ENTRIES * BLOCK_SIZE;

/** The layers of each chain above the first image both share (all of them when they share none). */
function layersAbove(a: readonly ImageRecord[], b: readonly ImageRecord[]): { a: readonly ImageRecord[]; b: readonly ImageRecord[] } {
  const inB = new Map(b.map((r, k) => [r.id, k]));
  const ka = a.findIndex((r) => inB.has(r.id));
  if (ka < 0) return { a, b };
  return { a: a.slice(0, ka), b: b.slice(0, inB.get(a[ka].id)) };
}

export class ChangedBlocks implements ChangeTracker {
  /**
   * `image` is compared with `since`, a frozen image held open (its lease
   * keeps it) for as long as this is used, and named `sinceName` as the user
   * spelled it.
   */
  constructor(
    private readonly store: Store,
    private readonly image: Image,
    private readonly since: Image,
    readonly sinceName: string = since.name,
  ) {}

  /**
   * Runs tiling [offset, offset+length) in order, merged, at most `maxRuns`
   * (then they cover a prefix of the range: every run returned is whole).
   */
  runs(offset: number, length: number, maxRuns: number): ChangeRun[] {
    const end = offset + length;
    const b0 = Math.floor(offset / BLOCK_SIZE);
    const b1 = Math.ceil(end / BLOCK_SIZE);
    if (b1 <= b0) return [];
    const s0 = Math.floor(b0 / SEGMENT_ENTRIES);
    const s1 = Math.floor((b1 - 1) / SEGMENT_ENTRIES) + 1;

    const candidates = this.segmentsThatMayDiffer(s0, s1);
    /** Runs in block numbers; a gap between candidates is unchanged. */
    const blocks: { start: number; end: number; changed: boolean }[] = [];
    const push = (start: number, stop: number, changed: boolean) => {
      if (stop <= start) return;
      const last = blocks[blocks.length - 1];
      if (last && last.changed === changed && last.end === start) last.end = stop;
      else blocks.push({ start, end: stop, changed });
    };
    let at = b0;
    const unflushed = this.image.unflushedSegments();
    for (const seg of candidates) {
      // A full set of runs is known once one more has begun.
      if (blocks.length > maxRuns) break;
      const first = seg * SEGMENT_ENTRIES;
      const from = Math.max(b0, first);
      const to = Math.min(b1, first + SEGMENT_ENTRIES);
      push(at, from, false);
      at = from;
      const mine = this.image.liveSegment(seg);
      const theirs = this.since.liveSegment(seg);
      const mark = (i: number, j: number) => {
        push(at, first + i, false);
        push(first + i, first + j, true);
        at = first + j;
      };
      if (!unflushed.has(seg)) differingRuns(mine, theirs, from - first, to - first, mark);
      else {
        // Unflushed data is in no map entry yet: such a block is changed whatever the entries say.
        const changed = new Uint8Array(to - from);
        differingRuns(mine, theirs, from - first, to - first, (i, j) => changed.fill(1, i - (from - first), j - (from - first)));
        for (let b = from; b < to; b++) if (this.image.unflushedBlock(b)) changed[b - from] = 1;
        let i = 0;
        while (i < changed.length) {
          let j = i;
          while (j < changed.length && changed[j] === changed[i]) j++;
          if (changed[i]) mark(from - first + i, from - first + j);
          i = j;
        }
      }
      push(at, to, false);
      at = to;
    }
    push(at, b1, false);
    const out = blocks.slice(0, maxRuns).map((r) => {
      const s = Math.max(r.start * BLOCK_SIZE, offset);
      return { offset: s, length: Math.min(r.end * BLOCK_SIZE, end) - s, changed: r.changed };
    });
    return out;
  }

  /**
   * Segments in [s0, s1) whose content may differ, ascending: where a layer
   * above the common ancestor (either side) has a row, where the open image
   * holds unflushed writes, and every segment past the smallest of those
   * layers' sizes (resolution cuts each layer off at its own end).
   */
  private segmentsThatMayDiffer(s0: number, s1: number): number[] {
    const mine = this.image.chainRecords;
    const above = layersAbove(mine, this.since.chainRecords);
    const layers = [...above.a, ...above.b];
    const out = new Set(segmentNumbersIn(this.store, layers.map((l) => l.id), s0, s1));
    for (const seg of this.image.unflushedSegments()) if (seg >= s0 && seg < s1) out.add(seg);
    const sizes = [mine[0], this.since.record, ...layers].map((l) => l.virtualSize);
    const whole = Math.floor(Math.min(...sizes) / SEGMENT_BYTES);
    for (let seg = Math.max(s0, whole); seg < s1; seg++) out.add(seg);
    return [...out].sort((x, y) => x - y);
  }
}
