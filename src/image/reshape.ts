/**
 * Reshaping images: flatten, rebase, commit, resize. Each is one transaction
 * over map segments and refcounts; none copies a data block, because a slot
 * number already is the content (resize may store one new block: the
 * partial block at its smaller end, whose bytes past that end must read
 * zeros once the image is larger).
 *
 * All four reduce to one step, rewriteOwnMap: give an image a new own map so
 * that, over a given parent, it reads exactly a given target view. The target
 * is always a view computed from committed maps before the rewrite, so
 * content is preserved by construction.
 *
 * Affected images (the rewritten one and everything that reads through it)
 * must not be open: an open handle holds its chain and resolved segments.
 */
import { resolveImage } from './refs.js';
import { StrataError, badInput } from '../errors.js';
import { bytesText, humanBytes } from '../units.js';
import { chainOf, childrenOf, descendantsOf, updateImage, countSlotRefs, loadSegment, saveSegment, segmentsOf, segCompact, segExpand, segGet, type Segment } from '../store/images/index.js';
import { assertNotOpen } from '../store/leases/index.js';
import type { BlockHash, Store } from '../store/core/index.js';
import { hashBlocks, placeBlocks, addRef, applyRefDeltas, type RefDeltas } from '../store/slots/index.js';
import {
  BLOCK_SIZE,
  INHERIT,
  SEGMENT_ENTRIES,
  ZERO,
  entrySlot,
  isFrozen,
  type ImageRecord,
  type MapEntry,
  type OnProgress,
  type SegmentIndex,
  type SlotNumber,
} from '../store/core/index.js';
import { checkVirtualSize, frozenKind } from './lifecycle.js';
import { blocksIn, resolveFrozen } from './resolve.js';
import { chainSegments } from './usage.js';
import { faultPoint } from '../store/core/index.js';

/**
 * The own entry that makes a layer read `target` over a parent reading
 * `parent`: the write path's rule, so reshaped maps look like written ones
 * (equal slots inherit, zero over zero inherits, zero over data is ZERO).
 */
export function ownEntryFor(target: number, parent: number): MapEntry {
  if (target === parent) return INHERIT;
  if (target < 2) return parent < 2 ? INHERIT : ZERO;
  return target as MapEntry;
}

function ownSegmentFor(target: Segment, parent: Segment, seg: number, blocks: number): Segment {
  const first = seg * SEGMENT_ENTRIES;
  if (first >= blocks) return INHERIT;
  const whole = first + SEGMENT_ENTRIES <= blocks;
  if (whole && typeof target === 'number' && typeof parent === 'number') return ownEntryFor(target, parent);
  const out = new Uint32Array(SEGMENT_ENTRIES);
  const n = Math.min(SEGMENT_ENTRIES, blocks - first);
  for (let i = 0; i < n; i++) out[i] = ownEntryFor(segGet(target, i), segGet(parent, i));
  return segCompact(out);
}

interface Rewrite {
  /** The image whose own map is replaced. */
  image: ImageRecord;
  /** Chain whose resolved view (nearest first, at level 0) the image must read afterwards. */
  target: readonly ImageRecord[];
  /** The image's parent chain afterwards; empty for no parent. */
  parent: readonly ImageRecord[];
  /** Virtual size afterwards. */
  size: number;
  /** Blocks whose target entry is replaced (resize's zero-tailed last block). */
  override?: Map<number, MapEntry>;
}

/**
 * Replaces `image`'s own map in the current transaction; returns its new
 * own-block count. Per segment: read the target and parent views, then write
 * the new own segment. The views never read `image`'s segment after it is
 * rewritten (the target reads segment s before s is saved; the parent chain
 * never contains `image`), so one pass is enough.
 */
function rewriteOwnMap(store: Store, w: Rewrite, deltas: RefDeltas): number {
  const db = store.db;
  const blocks = blocksIn(w.size);
  const segs = new Set<number>(chainSegments(store, w.target));
  if (w.parent.length > 0) for (const s of chainSegments(store, w.parent)) segs.add(s);
  for (const [s] of segmentsOf(db, w.image.id)) segs.add(s);
  let ownBlocks = 0;
  for (const seg of [...segs].sort((a, b) => a - b)) {
    const si = seg as SegmentIndex;
    let target = resolveFrozen(store, w.target, 0, si);
    if (w.override) {
      for (const [b, e] of w.override) {
        if (Math.floor(b / SEGMENT_ENTRIES) !== seg) continue;
        const t = segExpand(target).slice();
        t[b % SEGMENT_ENTRIES] = e;
        target = t;
      }
    }
    const parent = w.parent.length > 0 ? resolveFrozen(store, w.parent, 0, si) : INHERIT;
    const next = ownSegmentFor(target, parent, seg, blocks);
    const old = loadSegment(db, w.image.id, si);
    const plus = new Map<number, number>();
    const minus = new Map<number, number>();
    countSlotRefs(next, plus);
    countSlotRefs(old, minus);
    for (const [slot, n] of plus) {
      addRef(deltas, slot, n);
      ownBlocks += n;
    }
    for (const [slot, n] of minus) addRef(deltas, slot, -n);
    saveSegment(db, w.image.id, si, next);
  }
  return ownBlocks;
}

/**
 * Runs a reshape in one write transaction. The shared resolution cache may
 * have been filled with views read half-way through a transaction that then
 * rolled back, so it is dropped on error.
 */
function reshapeTx<T>(store: Store, op: string, fn: () => T): T {
  let r: T;
  try {
    r = store.write(() => {
      const out = fn();
      faultPoint(`${op}.before-commit`);
      return out;
    });
  } catch (e) {
    store.resolvedCache.clear();
    throw e;
  }
  faultPoint(`${op}.after-commit`);
  return r;
}

/** Bumps generations below a rewritten image so no cached resolution of theirs outlives the change. */
function touchDescendants(store: Store, img: ImageRecord): void {
  for (const d of descendantsOf(store.db, img.id)) updateImage(store.db, d.id, {});
}

export interface ReshapeResult {
  name: string;
  parent: string | null;
  virtualSize: number;
  ownBytes: number;
  /** Own bytes before the change, for the report. */
  ownBytesBefore: number;
}

const result = (store: Store, name: string, before: number): ReshapeResult => {
  const r = resolveImage(store.db, name);
  const parent = r.parentId === null ? null : chainOf(store.db, r)[1].name;
  return { name: r.name, parent, virtualSize: r.virtualSize, ownBytes: r.ownBlocks * BLOCK_SIZE, ownBytesBefore: before * BLOCK_SIZE };
};

/**
 * Options of flatten, rebase, commit and resize. `onProgress` counts the references
 * updated (most of the time of a large reshape); a throw from it rolls back.
 */
export interface ReshapeOptions {
  onProgress?: OnProgress;
}

/** The image keeps its content and stops depending on any parent. */
export function flattenImage(store: Store, name: string, opts: ReshapeOptions = {}): ReshapeResult {
  return reshapeTx(store, 'flatten', () => {
    const img = resolveImage(store.db, name);
    const chain = chainOf(store.db, img);
    assertNotOpen(store, [img, ...descendantsOf(store.db, img.id)], `flatten ${name}`);
    if (img.parentId === null) return result(store, name, img.ownBlocks);
    const deltas: RefDeltas = new Map();
    const ownBlocks = rewriteOwnMap(store, { image: img, target: chain, parent: [], size: img.virtualSize }, deltas);
    applyRefDeltas(store.db, deltas, undefined, { onProgress: opts.onProgress });
    updateImage(store.db, img.id, { parentId: null, ownBlocks, kind: isFrozen(img) ? frozenKind(null) : 'leaf' });
    touchDescendants(store, img);
    return result(store, name, img.ownBlocks);
  });
}

/** The image keeps its content over a new frozen parent; its own map keeps only what differs from it. */
export function rebaseImage(store: Store, name: string, onto: string, opts: ReshapeOptions = {}): ReshapeResult {
  return reshapeTx(store, 'rebase', () => {
    const img = resolveImage(store.db, name);
    const parent = resolveImage(store.db, onto);
    if (parent.id === img.id) throw badInput(`cannot rebase ${name} onto itself`, { image: name });
    const below = descendantsOf(store.db, img.id);
    if (below.some((d) => d.id === parent.id)) {
      throw badInput(`cannot rebase ${name} onto ${onto}: ${onto} is below ${name}, so the chain would loop`, { image: name, onto });
    }
    if (!isFrozen(parent)) {
      throw badInput(`cannot rebase ${name} onto ${onto}: ${onto} is a writable leaf; freeze or snapshot it first`, { image: name, onto });
    }
    const chain = chainOf(store.db, img);
    const parentChain = chainOf(store.db, parent);
    assertNotOpen(store, [img, ...below], `rebase ${name}`);
    const deltas: RefDeltas = new Map();
    const ownBlocks = rewriteOwnMap(store, { image: img, target: chain, parent: parentChain, size: img.virtualSize }, deltas);
    applyRefDeltas(store.db, deltas, undefined, { onProgress: opts.onProgress });
    updateImage(store.db, img.id, { parentId: parent.id, ownBlocks, kind: isFrozen(img) ? frozenKind(parent.id) : 'leaf' });
    touchDescendants(store, img);
    return result(store, name, img.ownBlocks);
  });
}

export interface CommitResult extends ReshapeResult {
  /** The parent that took the leaf's changes. */
  into: string;
  /** Own bytes of the parent afterwards. */
  intoOwnBytes: number;
}

/**
 * Merges a leaf's changes into its parent, which must have no other child
 * (they would see their parent change), and, unless forced, must not be a
 * snapshot: a snapshot keeps what it held when it was taken. The parent takes the leaf's content
 * and size; the leaf goes on, empty, above it.
 */
export function commitImage(store: Store, leafName: string, opts: ReshapeOptions & { force?: boolean } = {}): CommitResult {
  return reshapeTx(store, 'commit', () => {
    const leaf = resolveImage(store.db, leafName);
    if (leaf.kind !== 'leaf') {
      throw new StrataError('E_READONLY', `image ${leafName} is frozen (${leaf.kind}); commit merges a writable leaf into its parent`, { image: leafName });
    }
    if (leaf.parentId === null) throw badInput(`image ${leafName} has no parent to commit into`, { image: leafName });
    const chain = chainOf(store.db, leaf);
    const parent = chain[1];
    const siblings = childrenOf(store.db, parent.id).filter((c) => c.id !== leaf.id);
    if (siblings.length > 0) {
      throw new StrataError(
        'E_HAS_CHILDREN',
        `cannot commit ${leafName} into ${parent.name}: ${parent.name} has other children (${siblings.slice(0, 5).map((s) => s.name).join(', ')}), whose content would change`,
        { image: leafName, parent: parent.name, children: siblings.map((s) => s.name) },
      );
    }
    if (childrenOf(store.db, leaf.id).length > 0) {
      throw new StrataError('E_HAS_CHILDREN', `cannot commit ${leafName}: it has children`, { image: leafName });
    }
    assertNotOpen(store, [leaf, parent], `commit ${leafName} into ${parent.name}`);
    if (parent.snapshotAt !== null && !opts.force) {
      throw badInput(
        `cannot commit ${leafName} into ${parent.name}: ${parent.name} is a snapshot (taken ${new Date(parent.snapshotAt).toISOString()}) and would no longer hold what it held then; pass --force to change it, or snapshot ${leafName} instead`,
        { image: leafName, parent: parent.name },
      );
    }
    const deltas: RefDeltas = new Map();
    // The parent must read what the leaf reads now, over the parent's own parent.
    const ownBlocks = rewriteOwnMap(store, { image: parent, target: chain, parent: chain.slice(2), size: leaf.virtualSize }, deltas);
    // Then the leaf's own entries are redundant: it reads its parent, entry for entry.
    for (const [seg, s] of [...segmentsOf(store.db, leaf.id)]) {
      const refs = new Map<number, number>();
      countSlotRefs(s, refs);
      for (const [slot, n] of refs) addRef(deltas, slot, -n);
      saveSegment(store.db, leaf.id, seg, INHERIT);
    }
    applyRefDeltas(store.db, deltas, undefined, { onProgress: opts.onProgress });
    updateImage(store.db, parent.id, { ownBlocks, virtualSize: leaf.virtualSize });
    updateImage(store.db, leaf.id, { ownBlocks: 0 });
    const r = result(store, leafName, leaf.ownBlocks);
    return { ...r, into: parent.name, intoOwnBytes: ownBlocks * BLOCK_SIZE };
  });
}

/**
 * When `end` is inside a block and the chain reads a slot there whose bytes
 * past `end` are not all zero: that block with those bytes zeroed, placed
 * (deduplicated like any write) for the caller to commit. Otherwise null.
 */
function zeroedTail(store: Store, chain: readonly ImageRecord[], end: number): { block: number; entry: MapEntry; fresh: Map<SlotNumber, BlockHash> } | null {
  const tail = end % BLOCK_SIZE;
  if (tail === 0) return null;
  const block = Math.floor(end / BLOCK_SIZE);
  const view = resolveFrozen(store, chain, 0, Math.floor(block / SEGMENT_ENTRIES) as SegmentIndex);
  const e = segGet(view, block % SEGMENT_ENTRIES);
  if (e < 2) return null;
  const buf = Buffer.alloc(BLOCK_SIZE);
  store.read(entrySlot(e), 1, buf, 0);
  if (!buf.subarray(tail).some((x) => x !== 0)) return null;
  buf.fill(0, tail);
  const placed = placeBlocks(store, [buf], hashBlocks(store, [buf]));
  return { block, entry: placed.entries[0], fresh: placed.fresh };
}

/**
 * Grows a leaf, or shrinks it with `shrink`. Blocks past the new end are
 * dropped; blocks a grow exposes read zeros (ZERO over a parent's data).
 *
 * The block holding the smaller of the two ends, when that end is inside a
 * block, is stored again with its bytes past that end zeroed. On a shrink,
 * so that a later grow cannot bring the cut bytes back. On a grow, because
 * the bytes past the old end are not always zero: the leaf may read that
 * block whole from a larger parent, or hold its own copy of such a block
 * after a write into it. Imports now zero that tail (copySourceInto), but
 * leaves imported before hold such blocks.
 *
 * `to` is a size, or `{ by }` bytes more (or fewer) than the size read in the
 * transaction (`qemu-img resize IMG +1G`).
 */
export function resizeImage(store: Store, name: string, to: number | { by: number }, opts: ReshapeOptions & { shrink?: boolean } = {}): ReshapeResult {
  if (typeof to === 'number') checkVirtualSize(to);
  return reshapeTx(store, 'resize', () => {
    const img = resolveImage(store.db, name);
    if (isFrozen(img)) throw new StrataError('E_READONLY', `image ${name} is frozen (${img.kind}); only a leaf can be resized`, { image: name });
    if (typeof to !== 'number' && img.virtualSize + to.by < 0) {
      throw badInput(`cannot shrink ${name} (${bytesText(img.virtualSize)}) by ${bytesText(-to.by)}: that is more than its size`, { image: name });
    }
    const size = typeof to === 'number' ? to : checkVirtualSize(img.virtualSize + to.by);
    if (size < img.virtualSize && !opts.shrink) {
      throw badInput(`${humanBytes(size)} (${size} bytes) is smaller than ${name} (${bytesText(img.virtualSize)}); pass --shrink to drop the data past the new end`, { image: name, size });
    }
    if (size === img.virtualSize) return result(store, name, img.ownBlocks);
    const below = childrenOf(store.db, img.id);
    if (below.length > 0) throw new StrataError('E_HAS_CHILDREN', `cannot resize ${name}: images are built on it (${below[0].name})`, { image: name });
    assertNotOpen(store, [img], `resize ${name}`);
    const chain = chainOf(store.db, img);
    const deltas: RefDeltas = new Map();
    const cut = zeroedTail(store, chain, Math.min(size, img.virtualSize));
    const override = new Map<number, MapEntry>(cut ? [[cut.block, cut.entry]] : []);
    const fresh = cut?.fresh ?? new Map<SlotNumber, BlockHash>();
    const ownBlocks = rewriteOwnMap(store, { image: img, target: chain, parent: chain.slice(1), size, override }, deltas);
    applyRefDeltas(store.db, deltas, fresh, { onProgress: opts.onProgress });
    updateImage(store.db, img.id, { ownBlocks, virtualSize: size });
    return result(store, name, img.ownBlocks);
  });
}
