/**
 * Reshaping images: flatten, rebase, commit, resize. Each is one transaction
 * and one map edit (the store derives refcounts from it); none copies a data block, because a slot
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
import { chainOf, childrenOf, descendantsOf, editMap, updateImage, segmentNumbersOf, segCompact, segExpand, segGet, type MapChanges, type Segment } from '../store/images/index.js';
import { assertNotOpen } from '../store/leases/index.js';
import type { Store, WriteTx } from '../store/core/index.js';
import { hashBlocks, placeBlocks, type Placement } from '../store/slots/index.js';
import {
  BLOCK_SIZE,
  INHERIT,
  SEGMENT_ENTRIES,
  entrySlot,
  isFrozen,
  type ImageRecord,
  type MapEntry,
  type OnProgress,
  type SegmentIndex,
} from '../store/core/index.js';
import { checkVirtualSize, frozenKind } from './lifecycle.js';
import { ownEntryFor } from './flush.js';
import { blocksIn, resolveFrozen } from './resolve.js';
import { chainSegments } from './usage.js';
import { faultPoint } from '../store/core/index.js';

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
 * Replaces `image`'s own map, through `edit` (its changes in the current
 * transaction's map edit). Per segment: read the target and parent views,
 * then set the new own segment. The views never read `image`'s segment after
 * it is rewritten (the target reads segment s before s is set; the parent
 * chain never contains `image`), so one pass is enough.
 */
function rewriteOwnMap(store: Store, edit: MapChanges, w: Rewrite): void {
  const blocks = blocksIn(w.size);
  const segs = new Set<number>(chainSegments(store, w.target));
  if (w.parent.length > 0) for (const s of chainSegments(store, w.parent)) segs.add(s);
  for (const s of segmentNumbersOf(store, [w.image.id])) segs.add(s);
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
    edit.setSegment(si, ownSegmentFor(target, parent, seg, blocks));
  }
}

/**
 * Runs a reshape in one write transaction. The shared resolution cache may
 * have been filled with views read half-way through a transaction that then
 * rolled back, so it is dropped on error.
 */
function reshapeTx<T>(store: Store, op: string, fn: (tx: WriteTx) => T): T {
  let r: T;
  try {
    r = store.write((tx) => {
      const out = fn(tx);
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
function touchDescendants(tx: WriteTx, img: ImageRecord): void {
  for (const d of descendantsOf(tx, img.id)) updateImage(tx, d.id, {});
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
  const r = resolveImage(store, name);
  const parent = r.parentId === null ? null : chainOf(store, r)[1].name;
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
  return reshapeTx(store, 'flatten', (tx) => {
    const img = resolveImage(tx, name);
    const chain = chainOf(tx, img);
    assertNotOpen(store, [img, ...descendantsOf(tx, img.id)], `flatten ${name}`);
    if (img.parentId === null) return result(store, name, img.ownBlocks);
    const edit = editMap(tx, img);
    rewriteOwnMap(store, edit, { image: img, target: chain, parent: [], size: img.virtualSize });
    edit.commit({ onProgress: opts.onProgress, row: { parentId: null, kind: isFrozen(img) ? frozenKind(null) : 'leaf' } });
    touchDescendants(tx, img);
    return result(store, name, img.ownBlocks);
  });
}

/** The image keeps its content over a new frozen parent; its own map keeps only what differs from it. */
export function rebaseImage(store: Store, name: string, onto: string, opts: ReshapeOptions = {}): ReshapeResult {
  return reshapeTx(store, 'rebase', (tx) => {
    const img = resolveImage(tx, name);
    const parent = resolveImage(tx, onto);
    if (parent.id === img.id) throw badInput(`cannot rebase ${name} onto itself`, { image: name });
    const below = descendantsOf(tx, img.id);
    if (below.some((d) => d.id === parent.id)) {
      throw badInput(`cannot rebase ${name} onto ${onto}: ${onto} is below ${name}, so the chain would loop`, { image: name, onto });
    }
    if (!isFrozen(parent)) {
      throw badInput(`cannot rebase ${name} onto ${onto}: ${onto} is a writable leaf; freeze or snapshot it first`, { image: name, onto });
    }
    const chain = chainOf(tx, img);
    const parentChain = chainOf(tx, parent);
    assertNotOpen(store, [img, ...below], `rebase ${name}`);
    const edit = editMap(tx, img);
    rewriteOwnMap(store, edit, { image: img, target: chain, parent: parentChain, size: img.virtualSize });
    edit.commit({ onProgress: opts.onProgress, row: { parentId: parent.id, kind: isFrozen(img) ? frozenKind(parent.id) : 'leaf' } });
    touchDescendants(tx, img);
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
  return reshapeTx(store, 'commit', (tx) => {
    const leaf = resolveImage(tx, leafName);
    if (leaf.kind !== 'leaf') {
      throw new StrataError('E_READONLY', `image ${leafName} is frozen (${leaf.kind}); commit merges a writable leaf into its parent`, { image: leafName });
    }
    if (leaf.parentId === null) throw badInput(`image ${leafName} has no parent to commit into`, { image: leafName });
    const chain = chainOf(tx, leaf);
    const parent = chain[1];
    const siblings = childrenOf(tx, parent.id).filter((c) => c.id !== leaf.id);
    if (siblings.length > 0) {
      throw new StrataError(
        'E_HAS_CHILDREN',
        `cannot commit ${leafName} into ${parent.name}: ${parent.name} has other children (${siblings.slice(0, 5).map((s) => s.name).join(', ')}), whose content would change`,
        { image: leafName, parent: parent.name, children: siblings.map((s) => s.name) },
      );
    }
    if (childrenOf(tx, leaf.id).length > 0) {
      throw new StrataError('E_HAS_CHILDREN', `cannot commit ${leafName}: it has children`, { image: leafName });
    }
    assertNotOpen(store, [leaf, parent], `commit ${leafName} into ${parent.name}`);
    if (parent.snapshotAt !== null && !opts.force) {
      throw badInput(
        `cannot commit ${leafName} into ${parent.name}: ${parent.name} is a snapshot (taken ${new Date(parent.snapshotAt).toISOString()}) and would no longer hold what it held then; pass --force to change it, or snapshot ${leafName} instead`,
        { image: leafName, parent: parent.name },
      );
    }
    // The parent must read what the leaf reads now, over the parent's own parent.
    const edit = editMap(tx, parent);
    rewriteOwnMap(store, edit, { image: parent, target: chain, parent: chain.slice(2), size: leaf.virtualSize });
    // Then the leaf's own entries are redundant: it reads its parent, entry for entry.
    edit.of(leaf).dropAll();
    const { ownBlocks } = edit.commit({ onProgress: opts.onProgress, row: { virtualSize: leaf.virtualSize } });
    const r = result(store, leafName, leaf.ownBlocks);
    return { ...r, into: parent.name, intoOwnBytes: ownBlocks * BLOCK_SIZE };
  });
}

/**
 * When `end` is inside a block and the chain reads a slot there whose bytes
 * past `end` are not all zero: that block with those bytes zeroed, placed
 * (deduplicated like any write) for the caller to commit. Otherwise null.
 */
function zeroedTail(store: Store, chain: readonly ImageRecord[], end: number): { block: number; entry: MapEntry; placed: Placement } | null {
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
  return { block, entry: placed.entries[0], placed };
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
  return reshapeTx(store, 'resize', (tx) => {
    const img = resolveImage(tx, name);
    if (isFrozen(img)) throw new StrataError('E_READONLY', `image ${name} is frozen (${img.kind}); only a leaf can be resized`, { image: name });
    if (typeof to !== 'number' && img.virtualSize + to.by < 0) {
      throw badInput(`cannot shrink ${name} (${bytesText(img.virtualSize)}) by ${bytesText(-to.by)}: that is more than its size`, { image: name });
    }
    const size = typeof to === 'number' ? to : checkVirtualSize(img.virtualSize + to.by);
    if (size < img.virtualSize && !opts.shrink) {
      throw badInput(`${humanBytes(size)} (${size} bytes) is smaller than ${name} (${bytesText(img.virtualSize)}); pass --shrink to drop the data past the new end`, { image: name, size });
    }
    if (size === img.virtualSize) return result(store, name, img.ownBlocks);
    const below = childrenOf(tx, img.id);
    if (below.length > 0) throw new StrataError('E_HAS_CHILDREN', `cannot resize ${name}: images are built on it (${below[0].name})`, { image: name });
    assertNotOpen(store, [img], `resize ${name}`);
    const chain = chainOf(tx, img);
    const cut = zeroedTail(store, chain, Math.min(size, img.virtualSize));
    const override = new Map<number, MapEntry>(cut ? [[cut.block, cut.entry]] : []);
    const edit = editMap(tx, img);
    rewriteOwnMap(store, edit, { image: img, target: chain, parent: chain.slice(1), size, override });
    edit.commit({ placed: cut?.placed, onProgress: opts.onProgress, row: { virtualSize: size } });
    return result(store, name, img.ownBlocks);
  });
}
