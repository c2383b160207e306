/**
 * A local frozen image as a remote layer: its own map walked in block
 * order, each data block read, named by digest and handed out in batches
 * (for push to pack), and the layer object in canonical form (layer-file.ts)
 * with its id.
 *
 * The caller holds a lease on the image (or on an image above it), so no
 * slot its map names can be freed and reused during the walk; digests are
 * computed from the bytes as read, so what is pushed is what is read.
 */
import { segmentsOf, segGet, type Segment } from '../../store/images/index.js';
import { slotReader } from '../../store/slots/index.js';
import { damagedSlotOf, inImage } from '../../store/blocks/index.js';
import type { Store } from '../../store/core/index.js';
import { BLOCK_SIZE, INHERIT, SEGMENT_ENTRIES, ZERO, type ImageRecord, type SegmentIndex, type SlotNumber } from '../../store/core/index.js';
import { blocksIn, resolveFrozen } from '../../image/resolve.js';
import { encodeLayer, RUN_DATA, RUN_ZERO, type LayerMap, type LayerRun } from '../objects/layer-file.js';
import { sha256, sha256Hex } from '../objects/layout.js';

export interface LayerBlock {
  /** Logical block number in the image. */
  block: number;
  digest: Buffer;
  /** The store's 53-bit hash of the block (its dedup index key). */
  hint: number;
  /** The 4 KiB, valid until the walk goes on. */
  data: Buffer;
}

export interface LocalLayer {
  map: LayerMap;
  bytes: Buffer;
  id: string;
}

/** Appends a run, merging it into the last when they touch and are of one kind. */
function addRun(runs: LayerRun[], first: number, kind: LayerRun['kind']): void {
  const last = runs[runs.length - 1];
  if (last && last.kind === kind && last.first + last.count === first && last.count < 0xffffffff) last.count++;
  else runs.push({ first, count: 1, kind });
}

/**
 * Walks chain[0]'s own map (chain nearest first, frozen), yielding its data
 * blocks one segment (up to 16 MiB) at a time; returns the layer.
 */
export function* walkLayer(store: Store, chain: readonly ImageRecord[]): Generator<LayerBlock[], LocalLayer> {
  const rec = chain[0];
  const blocks = blocksIn(rec.virtualSize);
  const runs: LayerRun[] = [];
  const digests: Buffer[] = [];
  const slots = slotReader(store);
  // Loaded whole first: no other statement may run on the connection while one iterates.
  const own = [...segmentsOf(store, rec.id)];
  const buf = Buffer.allocUnsafe(SEGMENT_ENTRIES * BLOCK_SIZE);
  for (const [seg, s] of own) {
    const base = seg * SEGMENT_ENTRIES;
    if (base >= blocks) break;
    const parent: Segment = chain.length > 1 ? resolveFrozen(store, chain, 1, seg as SegmentIndex) : INHERIT;
    const n = Math.min(SEGMENT_ENTRIES, blocks - base);
    const dataAt: number[] = [];
    const dataSlot: number[] = [];
    for (let i = 0; i < n; i++) {
      const e = segGet(s, i);
      if (e === INHERIT) continue;
      if (e === ZERO) {
        // Canonical: a zero entry matters only where the parent has data to hide.
        if (segGet(parent, i) >= 2) addRun(runs, base + i, RUN_ZERO);
        continue;
      }
      addRun(runs, base + i, RUN_DATA);
      dataAt.push(i);
      dataSlot.push(e - 2);
    }
    // Runs of consecutive slots in one read each.
    for (let k = 0; k < dataSlot.length; ) {
      let m = 1;
      while (k + m < dataSlot.length && dataSlot[k + m] === dataSlot[k] + m) m++;
      try {
        store.read(dataSlot[k] as SlotNumber, m, buf, k * BLOCK_SIZE);
      } catch (e) {
        // A damaged block is never pushed: the push fails naming the image and offset.
        const bad = damagedSlotOf(e);
        if (bad === undefined) throw e;
        throw inImage(e, rec.name, bad, (base + dataAt[k + bad - dataSlot[k]]) * BLOCK_SIZE);
      }
      k += m;
    }
    const batch: LayerBlock[] = [];
    for (let k = 0; k < dataSlot.length; k++) {
      const data = buf.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
      const digest = sha256(data);
      digests.push(digest);
      batch.push({ block: base + dataAt[k], digest, hint: slots.hash(dataSlot[k]), data });
    }
    if (batch.length > 0) yield batch;
  }
  const map: LayerMap = { virtualSize: rec.virtualSize, runs, digests: Buffer.concat(digests) };
  const bytes = encodeLayer(map);
  return { map, bytes, id: sha256Hex(bytes) };
}

/** The layer of a local image without keeping its blocks (to compare it with a remote one). */
export function localLayer(store: Store, chain: readonly ImageRecord[]): LocalLayer {
  const walk = walkLayer(store, chain);
  for (;;) {
    const r = walk.next();
    if (r.done) return r.value;
  }
}
