/**
 * A writable leaf's flush, as named passes:
 *
 *   stage  the dirty blocks in block order, hashed (before the transaction);
 *   place  each block found or stored by the store's placement, the one
 *          place that decides whether a block is new (inside it);
 *   apply  the leaf's new own segments, as one map edit the store applies
 *          (it derives refcounts and the own-block count);
 *   index  the dedup index rows of the new slots: now, or owed to a later,
 *          larger batch (IndexQueue).
 *
 * The open image (image.ts) holds the state between flushes and runs the
 * passes in order, inside one write transaction from place to index.
 */
import { editMap, segClone, segCompact, segExpand, segGet, type Segment } from '../store/images/index.js';
import { hashBlocks, indexSlots, placeBlocks, type PlaceOptions, type Placement } from '../store/slots/index.js';
import type { BlockHash, Store, WriteTx } from '../store/core/index.js';
import { INHERIT, SEGMENT_ENTRIES, ZERO, type ImageRecord, type MapEntry, type SegmentIndex } from '../store/core/index.js';

/** Flushes placing at most this many new slots add them to the dedup index at once. */
const INDEX_NOW = 1024;
/** Larger ones gather index rows until this many, then add them in one sorted batch (about 3 MiB of rows). */
const INDEX_BATCH = 131072;

const segOf = (b: number): number => Math.floor(b / SEGMENT_ENTRIES);

/**
 * The own entry that makes a layer read `target` over a parent reading
 * `parent`: equal slots inherit, zero over zero (or over a hole) inherits,
 * zero over data is ZERO. Writes follow it, and reshapes (reshape.ts), so a
 * reshaped map looks like a written one.
 */
export function ownEntryFor(target: number, parent: number): MapEntry {
  if (target === parent) return INHERIT;
  if (target < 2) return parent < 2 ? INHERIT : ZERO;
  return target as MapEntry;
}

/** The dirty blocks of one flush, in block order. */
export interface Staged {
  blocks: number[];
  bufs: Buffer[];
  /** Their hashes; -1 for an all-zero block. */
  hashes: BlockHash[];
}

/** Stage: the dirty blocks, sorted and hashed. Outside the transaction, so other writers do not wait for the hashing. */
export function stage(store: Store, dirty: ReadonlyMap<number, Buffer>): Staged {
  const blocks = [...dirty.keys()].sort((a, b) => a - b);
  const bufs = blocks.map((b) => dirty.get(b)!);
  return { blocks, bufs, hashes: hashBlocks(store, bufs) };
}

/** Place: each staged block found among stored ones or stored anew (inside the transaction; see placement.ts). */
export function place(store: Store, staged: Staged, opts: PlaceOptions): Placement {
  return placeBlocks(store, staged.bufs, staged.hashes, opts);
}

/** The leaf as a flush sees it. */
export interface LeafView {
  /** Own segments that unflushed zeroing changed. */
  zeroed: Iterable<number>;
  /** An own segment as the handle holds it: committed, with unflushed zeroing. */
  own(seg: number): Segment;
  /** The parent chain's resolved segment. */
  parent(seg: number): Segment;
}

/**
 * Apply: the leaf's new own segments (those zeroing changed, and those the
 * staged blocks are in, each block's entry by ownEntryFor) as one map edit.
 * `index` collects the dedup index rows of the fresh slots (hash, slot, ...)
 * for the index pass. Returns the new segments, for the handle to keep, and
 * the leaf's own-block count.
 */
export function apply(tx: WriteTx, leaf: ImageRecord, staged: Staged, placed: Placement, view: LeafView, index: number[]): { segs: Map<number, Segment>; ownBlocks: number } {
  const next = new Map<number, Segment>();
  for (const seg of view.zeroed) next.set(seg, view.own(seg));
  let cur = -1;
  let arr: Uint32Array | undefined;
  let parent: Segment = INHERIT;
  for (let k = 0; k < staged.blocks.length; k++) {
    const b = staged.blocks[k];
    const seg = segOf(b);
    if (seg !== cur) {
      if (arr) next.set(cur, arr);
      cur = seg;
      arr = segClone(segExpand(next.get(seg) ?? view.own(seg))) as Uint32Array;
      parent = view.parent(seg);
    }
    const i = b % SEGMENT_ENTRIES;
    arr![i] = ownEntryFor(placed.entries[k], segGet(parent, i));
  }
  if (arr) next.set(cur, arr);
  const edit = editMap(tx, leaf);
  const segs = new Map<number, Segment>();
  for (const [seg, s] of next) {
    const c = segCompact(s);
    edit.setSegment(seg as SegmentIndex, c);
    segs.set(seg, c);
  }
  const { ownBlocks } = edit.commit({ placed, index });
  return { segs, ownBlocks };
}

/**
 * Index: the dedup index rows one writer owes. Small flushes add their rows
 * at once; large ones gather them (hash, slot, ...) and add them in sorted
 * batches of INDEX_BATCH: inserting each flush's rows at random points of
 * the index rewrote most of its pages on every flush, which made an
 * import's cost grow with the square of its size. Until then `recent` holds
 * the same rows for this writer's own placement.
 */
export class IndexQueue {
  private owed: number[] = [];
  /** Hash -> slot of the rows owed: placement's candidates for this writer's own blocks. */
  readonly recent = new Map<number, number>();

  /**
   * Owes so many rows that even a lazy import syncs and adds them now: its
   * memory (`recent`) and the final sorted insert stay bounded by the batch.
   */
  get full(): boolean {
    return this.owed.length >= 2 * INDEX_BATCH;
  }

  /**
   * Inside the flush's transaction: adds this flush's rows and those owed,
   * when the flush is durable (a slot whose data may not be durable must not
   * be indexed: another image could come to share it) and the batch is
   * small, full, or the last. Returns whether it did.
   */
  pass(tx: WriteTx, pairs: number[], o: { durable: boolean; final: boolean }): boolean {
    const queued = this.owed.length + pairs.length;
    if (!o.durable || !(o.final || queued <= 2 * INDEX_NOW || queued >= 2 * INDEX_BATCH)) return false;
    indexSlots(tx, this.owed.length === 0 ? pairs : this.owed.concat(pairs));
    return true;
  }

  /** After the flush committed: rows that went in are forgotten; otherwise this flush's are owed too. */
  committed(pairs: readonly number[], indexed: boolean): void {
    if (indexed) {
      this.owed = [];
      this.recent.clear();
      return;
    }
    for (let k = 0; k < pairs.length; k += 2) {
      this.owed.push(pairs[k], pairs[k + 1]);
      this.recent.set(pairs[k], pairs[k + 1]);
    }
  }

  /** Adds every row owed, in a transaction of its own (a last flush with nothing else to commit). */
  drain(store: Store): void {
    if (this.owed.length === 0) return;
    const pairs = this.owed;
    store.write((tx) => indexSlots(tx, pairs));
    this.owed = [];
    this.recent.clear();
  }
}
