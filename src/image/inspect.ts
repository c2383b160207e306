/**
 * Looking at images without reading their data: map (which layer supplies
 * each range), diff (where two images differ) and du (what each image costs).
 * Everything here is decided from the maps: equal slot numbers mean equal
 * content, because the store keeps each distinct block once.
 */
import { resolveImage } from './refs.js';
import { chainOf, listVisibleImages, ownSlotRefs, loadSegment, segGet, type Segment } from '../store/images/index.js';
import { readTx, type Store, BLOCK_SIZE, INHERIT, SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../store/core/index.js';
import { forEachLiveSlot, nextSlot } from '../store/slots/index.js';
import { fragmentBytes } from '../store/blocks/index.js';
import { appendExtent, type Extent, type ExtentKind } from './device.js';
import { blocksIn, resolveFrozen } from './resolve.js';
import { differingRuns } from './compare.js';
import { chainSegments, referencedBlocks, type ReferencedCache } from './usage.js';

// ---- map -----------------------------------------------------------------------

/** Resolved entries of one segment and the depth of the layer that supplies each (-1: hole). */
interface DepthSegment {
  entries: Uint32Array;
  depth: Int32Array;
}

/**
 * Like resolveFrozen, keeping track of which layer answered. Same rule: at
 * each level a block past that image's end is a hole, whatever lies below.
 */
function resolveWithDepth(store: Store, chain: readonly ImageRecord[], seg: number): DepthSegment {
  const entries = new Uint32Array(SEGMENT_ENTRIES);
  const depth = new Int32Array(SEGMENT_ENTRIES).fill(-1);
  const open = new Uint8Array(SEGMENT_ENTRIES).fill(1);
  let left = SEGMENT_ENTRIES;
  const base = seg * SEGMENT_ENTRIES;
  for (let k = 0; k < chain.length && left > 0; k++) {
    const own: Segment = loadSegment(store, chain[k].id, seg as SegmentIndex);
    const limit = blocksIn(chain[k].virtualSize) - base;
    if (own === INHERIT && limit >= SEGMENT_ENTRIES) continue;
    for (let i = 0; i < SEGMENT_ENTRIES; i++) {
      if (!open[i]) continue;
      if (i >= limit) {
        open[i] = 0;
        left--;
        continue;
      }
      const e = segGet(own, i);
      if (e !== INHERIT) {
        entries[i] = e;
        depth[i] = k;
        open[i] = 0;
        left--;
      }
    }
  }
  return { entries, depth };
}

const kindOf = (e: number): ExtentKind => (e >= 2 ? 'data' : e === 1 ? 'zero' : 'hole');

/** An extent of `map`: besides the depth of the layer that supplies it, that layer's name. */
export interface MapExtent extends Extent {
  layer?: string;
}

export interface ImageMap {
  name: string;
  virtualSize: number;
  extents: MapExtent[];
}

/** Extents of an image from its committed maps, like `qemu-img map`: kind, and the depth and name of the supplying layer. */
export function mapImage(store: Store, name: string): ImageMap {
  const img = resolveImage(store, name);
  const chain = chainOf(store, img);
  const out: MapExtent[] = [];
  const push = (offset: number, length: number, kind: ExtentKind, depth: number) =>
    appendExtent(out, kind === 'hole' ? { offset, length, kind } : { offset, length, kind, depth, layer: chain[depth].name });
  const blocks = blocksIn(img.virtualSize);
  const present = new Set(chainSegments(store, chain));
  for (let seg = 0; seg * SEGMENT_ENTRIES < blocks; seg++) {
    const first = seg * SEGMENT_ENTRIES;
    const n = Math.min(SEGMENT_ENTRIES, blocks - first);
    if (!present.has(seg as SegmentIndex)) {
      push(first * BLOCK_SIZE, n * BLOCK_SIZE, 'hole', -1);
      continue;
    }
    const r = resolveWithDepth(store, chain, seg);
    for (let i = 0; i < n; i++) push((first + i) * BLOCK_SIZE, BLOCK_SIZE, kindOf(r.entries[i]), r.depth[i]);
  }
  // The last block may be partial.
  const last = out[out.length - 1];
  if (last && last.offset + last.length > img.virtualSize) last.length = img.virtualSize - last.offset;
  return { name: img.name, virtualSize: img.virtualSize, extents: out };
}

// ---- diff ----------------------------------------------------------------------

export interface DiffResult {
  a: string;
  b: string;
  virtualSizeA: number;
  virtualSizeB: number;
  /** Byte ranges whose content differs. Past the end of the smaller image, it counts as zeros. */
  extents: { offset: number; length: number }[];
  differingBytes: number;
}

export function diffImages(store: Store, nameA: string, nameB: string): DiffResult {
  const a = resolveImage(store, nameA);
  const b = resolveImage(store, nameB);
  const ca = chainOf(store, a);
  const cb = chainOf(store, b);
  const segs = new Set<number>([...chainSegments(store, ca), ...chainSegments(store, cb)]);
  const out: { offset: number; length: number }[] = [];
  const end = Math.max(a.virtualSize, b.virtualSize);
  for (const seg of [...segs].sort((x, y) => x - y)) {
    const first = seg * SEGMENT_ENTRIES;
    if (first * BLOCK_SIZE >= end) break;
    const ra = resolveFrozen(store, ca, 0, seg as SegmentIndex);
    const rb = resolveFrozen(store, cb, 0, seg as SegmentIndex);
    differingRuns(ra, rb, 0, SEGMENT_ENTRIES, (i, j) => {
      const offset = (first + i) * BLOCK_SIZE;
      if (offset >= end) return;
      const length = Math.min((first + j) * BLOCK_SIZE, end) - offset;
      const last = out[out.length - 1];
      if (last && last.offset + last.length === offset) last.length += length;
      else out.push({ offset, length });
    });
  }
  return { a: a.name, b: b.name, virtualSizeA: a.virtualSize, virtualSizeB: b.virtualSize, extents: out, differingBytes: out.reduce((s, e) => s + e.length, 0) };
}

// ---- du ------------------------------------------------------------------------

export interface ImageUsage {
  name: string;
  kind: string;
  virtualSize: number;
  /** Stored data the image reads through its whole chain. */
  referencedBytes: number;
  /** Data its own layer maps (parents excluded), counted per map entry. */
  ownBytes: number;
  /** Own bytes that removing this image alone would free: slots no other image's map references. */
  exclusiveBytes: number;
  /** Own bytes that other images' maps reference too. own = exclusive + shared. */
  sharedBytes: number;
  /**
   * Distinct blocks of its own layer stored compressed: their bytes before
   * (4 KiB each) and after (their fragments; containers add some slack).
   */
  compression: { bytesBefore: number; bytesAfter: number };
}

/**
 * Refcount of every slot, indexed by slot number (0 for slots without a row).
 * Float64, not Uint32: a refcount reaches 2^32 with 16 TiB of one repeated
 * block (all-equal segments make that cheap), and doubles are exact to 2^53.
 */
interface SlotFacts {
  refcounts: Float64Array;
  /** Fragment bytes of a packed slot, 0 for one in its own place. */
  fragment: Uint16Array;
}

function refcountTable(store: Store): SlotFacts {
  const n = Math.max(nextSlot(store), 1);
  const t = { refcounts: new Float64Array(n), fragment: new Uint16Array(n) };
  forEachLiveSlot(
    store,
    (slot, rc, _hash, loc) => {
      if (slot >= n) return;
      t.refcounts[slot] = rc;
      t.fragment[slot] = fragmentBytes(loc);
    },
    { hashes: false },
  );
  return t;
}

/**
 * A slot is exclusive to an image when all its references come from that
 * image's own map: refcount == references from that map (a slot referenced
 * twice by one map and by nothing else is exclusive, both times).
 */
function usageOf(store: Store, img: ImageRecord, facts: SlotFacts, referenced?: ReferencedCache): ImageUsage {
  const refs = ownSlotRefs(store, [img.id]);
  let own = 0;
  let exclusive = 0;
  let packed = 0;
  let packedBytes = 0;
  for (const [slot, n] of refs) {
    own += n;
    if (facts.refcounts[slot] === n) exclusive += n;
    if (facts.fragment[slot] > 0) {
      packed++;
      packedBytes += facts.fragment[slot];
    }
  }
  return {
    name: img.name,
    kind: img.kind,
    virtualSize: img.virtualSize,
    referencedBytes: referencedBlocks(store, img, referenced) * BLOCK_SIZE,
    ownBytes: own * BLOCK_SIZE,
    exclusiveBytes: exclusive * BLOCK_SIZE,
    sharedBytes: (own - exclusive) * BLOCK_SIZE,
    compression: { bytesBefore: packed * BLOCK_SIZE, bytesAfter: packedBytes },
  };
}

/** Usage of the named images, or of every visible image. Read in one snapshot so the figures agree. */
export function diskUsageOf(store: Store, names: readonly string[] = [], opts: { referenced?: ReferencedCache } = {}): ImageUsage[] {
  return readTx(store, () => {
    const images = names.length > 0 ? names.map((n) => resolveImage(store, n)) : listVisibleImages(store);
    const refcounts = refcountTable(store);
    return images.map((i) => usageOf(store, i, refcounts, opts.referenced));
  });
}

/**
 * What an image's own layer holds, ignoring its parents: INHERIT is a hole,
 * ZERO is zero, a slot is data. A per-layer qcow2 export writes exactly this.
 */
export function ownExtents(store: Store, img: ImageRecord, offset: number, length: number): Extent[] {
  const out: Extent[] = [];
  const end = Math.min(offset + length, img.virtualSize);
  const push = (start: number, stop: number, kind: ExtentKind) => {
    const s = Math.max(start, offset);
    appendExtent(out, { offset: s, length: Math.min(stop, end) - s, kind });
  };
  const kindOf = (e: number): ExtentKind => (e >= 2 ? 'data' : e === 1 ? 'zero' : 'hole');
  const segBytes = SEGMENT_ENTRIES * 4096;
  for (let seg = Math.floor(offset / segBytes); seg * segBytes < end; seg++) {
    const s = loadSegment(store, img.id, seg as SegmentIndex);
    if (typeof s === 'number') {
      push(seg * segBytes, (seg + 1) * segBytes, kindOf(s));
      continue;
    }
    for (let i = 0; i < SEGMENT_ENTRIES; i++) push(seg * segBytes + i * 4096, seg * segBytes + (i + 1) * 4096, kindOf(s[i]));
  }
  return out;
}
