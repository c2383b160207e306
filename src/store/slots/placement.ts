/**
 * The one place that decides whether a block of data is new or already
 * stored. Every writer (image flush, import, NBD) goes through placeBlocks;
 * a lazy clone's blocks, whose bytes stay remote, through placeRemote.
 *
 * Runs inside the write transaction: the candidates it compares against are
 * committed slots that no other process can free until we commit, and the
 * slots it allocates become referenced in the same commit.
 */
import { BLOCK_SIZE, ZERO, slotEntry, type MapEntry, type SlotNumber } from '../core/types.js';
import { allocateRun, allocateSlots } from './allocator.js';
import type { BlockHash } from '../core/hash.js';
import type { Store } from '../core/store.js';
import { faultPoint } from '../core/faults.js';
import { indexLookup, slotReader } from './slots.js';
import { bytesHere } from '../blocks/location.js';
import { compressEach, CODEC_IDS, type CodecSpec } from '../blocks/codecs.js';
import { fragmentLocation, fragmentRun, type FragmentRun } from '../blocks/fragment-run.js';
import type { Packing } from './refcounts.js';
import { remoteSlotOf, type RemotePlace } from '../blocks/remote-locs.js';

/** Candidates compared per hash: a flood of colliding blocks degrades dedup, never correctness or speed. */
const MAX_CANDIDATES = 8;

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

export function isZeroBlock(b: Uint8Array): boolean {
  return b.length === BLOCK_SIZE ? Buffer.compare(b, ZERO_BLOCK) === 0 : b.every((x) => x === 0);
}

/**
 * Slots that may already hold each hash: the index's rows, and `recent`
 * (slots this writer placed but has not yet added to the index), up to
 * MAX_CANDIDATES each. Unverified: placeBlocks checks each before sharing.
 */
function candidatesFor(store: Store, hashes: readonly BlockHash[], recent?: ReadonlyMap<BlockHash, number>): Map<BlockHash, number[]> {
  const out = indexLookup(store, hashes.filter((h) => h !== -1), MAX_CANDIDATES);
  if (recent && recent.size > 0) {
    for (const h of hashes) {
      const slot = recent.get(h);
      if (slot === undefined) continue;
      const list = out.get(h);
      if (!list) out.set(h, [slot]);
      else if (list.length < MAX_CANDIDATES && !list.includes(slot)) list.push(slot);
    }
  }
  return out;
}

/** True when `b` starts where `a` ends in the same memory, so the two can go out as one write. */
const adjacent = (a: Uint8Array, b: Uint8Array) => a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;

export interface Placement {
  /** Map entry for each input block, in input order: ZERO or a slot. */
  entries: MapEntry[];
  /** Slots allocated and written by this call, with their hash. */
  fresh: Map<SlotNumber, BlockHash>;
  /** Which of `fresh` were stored compressed, and where (pass to applyRefDeltas). */
  packing: Packing;
}

/** Hashes outside the transaction; -1 marks an all-zero block. */
export function hashBlocks(store: Store, blocks: readonly Uint8Array[]): BlockHash[] {
  return blocks.map((b) => (isZeroBlock(b) ? -1 : store.hash(b)));
}

export interface PlaceOptions {
  /** Slots this writer placed and has not yet added to the index (hash -> slot). */
  recent?: ReadonlyMap<BlockHash, number>;
  /**
   * false: start writing the new slots to the device but do not wait for it.
   * Only for an image nobody else can see (an import under its hidden name)
   * whose new slots stay out of the dedup index until a later sync: if the
   * process dies, recovery drops the image and its slots, and no other image
   * can have come to share them.
   */
  durable?: boolean;
  /** Stores new blocks that shrink compressed as fragments packed into container slots. */
  compress?: CodecSpec;
}

/**
 * Finds or stores each block. Call inside store.write(); returns after the
 * new slots are written and synced (unless `durable` is false), so the
 * caller's commit can reference them.
 */
export function placeBlocks(store: Store, blocks: readonly Uint8Array[], hashes: readonly BlockHash[], opts: PlaceOptions = {}): Placement {
  const entries: MapEntry[] = new Array(blocks.length);
  const known = candidatesFor(store, hashes, opts.recent);
  const slotsNow = slotReader(store);
  const scratch = Buffer.allocUnsafe(BLOCK_SIZE);
  // Blocks of this batch that need a new slot, and an index to share within the batch.
  const newBlocks: number[] = [];
  const batch = new Map<BlockHash, number[]>();
  const owner = new Int32Array(blocks.length).fill(-1); // batch duplicate -> index of first copy

  for (let i = 0; i < blocks.length; i++) {
    const h = hashes[i];
    if (h === -1) {
      entries[i] = ZERO;
      continue;
    }
    const data = blocks[i];
    const same = batch.get(h);
    const twin = same?.find((j) => Buffer.compare(blocks[j], data) === 0);
    if (twin !== undefined) {
      owner[i] = twin;
      continue;
    }
    let found: number | undefined;
    for (const slot of known.get(h) ?? []) {
      // The index is only a hint: share a slot only while it is referenced (committed, so no
      // other process can free it before we commit), says it holds this hash, and holds these bytes.
      // A block whose bytes are in a remote pack (not fetched, or evicted) has nothing here to compare.
      if (slotsNow.refcount(slot) === 0 || slotsNow.hash(slot) !== h || !bytesHere(slotsNow.loc(slot))) continue;
      store.readUnverified(slot as SlotNumber, 1, scratch, 0); // the compare is the proof
      if (scratch.equals(data)) {
        found = slot;
        break;
      }
    }
    if (found !== undefined) {
      entries[i] = slotEntry(found as SlotNumber);
      continue;
    }
    newBlocks.push(i);
    // Like the index lookup, a batch keeps MAX_CANDIDATES per hash: a collision flood costs dedup, not time.
    if (!same) batch.set(h, [i]);
    else if (same.length < MAX_CANDIDATES) same.push(i);
  }

  const fresh = new Map<SlotNumber, BlockHash>();
  const packing: Packing = { locs: new Map(), containers: [] };
  const stored = opts.compress && newBlocks.length > 0 ? packBlocks(opts.compress, newBlocks.map((i) => blocks[i])) : null;
  const raw = stored ? stored.raw : newBlocks.map((_, k) => k);
  const placed = raw.length;
  // Raw blocks take the lowest slots, in runs; a packed block's own slot is only its number (its
  // place in the data files stays a hole). Containers are one run of fresh slots at the end.
  const slots = allocateSlots(store, placed + (stored ? stored.packed.length : 0));
  const run = stored ? allocateRun(store, stored.run.slots()) : [];
  const writes: Uint8Array[] = [];
  let k = 0;
  for (const j of raw) {
    const i = newBlocks[j];
    writes.push(blocks[i]);
    entries[i] = slotEntry(slots[k]);
    fresh.set(slots[k++], hashes[i]);
  }
  if (stored) {
    packing.containers.push(...run);
    for (const p of stored.packed) {
      const i = newBlocks[p.block];
      const slot = slots[k++];
      entries[i] = slotEntry(slot);
      fresh.set(slot, hashes[i]);
      packing.locs.set(slot, fragmentLocation(run, p.at, p.length, CODEC_IDS[opts.compress!.codec]));
    }
    if (run.length > 0) store.blocks.write(run[0], stored.run.pieces());
  }
  writeSlots(store, slots.slice(0, placed), writes);
  for (let i = 0; i < blocks.length; i++) if (owner[i] >= 0) entries[i] = entries[owner[i]];
  faultPoint('flush.after-data-write');
  // Ordering: the data must be durable before the transaction that references it commits.
  if (placed > 0 || run.length > 0) {
    if (opts.durable === false) store.blocks.startWriteback();
    else store.blocks.sync();
  }
  faultPoint('flush.after-data-sync');
  return { entries, fresh, packing };
}

/** A block whose bytes stay in a remote pack: its place, and the hash its pusher's store recorded (the remote index's hint). */
export interface RemoteBlock {
  place: RemotePlace;
  hint: BlockHash;
}

export interface RemotePlacement {
  /** Map entry for each input block, in input order: a slot. */
  entries: MapEntry[];
  /** Slots allocated by this call, with their hint: nothing was written to them. */
  fresh: Map<SlotNumber, BlockHash>;
  /** Where each of `fresh` is (pass both to the map edit's commit, which makes their locations REMOTE). */
  remote: Map<SlotNumber, RemotePlace>;
}

/**
 * Places blocks whose bytes stay in a remote pack (a lazy clone's layers).
 * Call inside store.write(). A block that a live slot already stands for in
 * the same remote's packs names that slot (never another remote's:
 * remote-locs.ts); any other gets a fresh slot and nothing is written. Not
 * in the dedup index: nothing may share such a block by comparing bytes
 * before its bytes are here.
 */
export function placeRemote(store: Store, blocks: readonly RemoteBlock[]): RemotePlacement {
  const slotsNow = slotReader(store);
  const entries: MapEntry[] = new Array(blocks.length);
  const need: number[] = [];
  const first = new Map<string, number>(); // digest (hex) -> first block with it: one slot per block
  const twins: [number, number][] = [];
  blocks.forEach((b, i) => {
    const key = `${b.place.remote}/${b.place.digest.toString('hex')}`;
    const j = first.get(key);
    if (j !== undefined) return void twins.push([i, j]);
    first.set(key, i);
    const s = remoteSlotOf(store, b.place.remote, b.place.digest);
    if (s !== undefined && slotsNow.refcount(s) > 0) entries[i] = slotEntry(s as SlotNumber);
    else need.push(i);
  });
  const fresh = new Map<SlotNumber, BlockHash>();
  const remote = new Map<SlotNumber, RemotePlace>();
  const got = allocateSlots(store, need.length);
  need.forEach((i, k) => {
    entries[i] = slotEntry(got[k]);
    fresh.set(got[k], blocks[i].hint);
    remote.set(got[k], blocks[i].place);
  });
  for (const [i, j] of twins) entries[i] = entries[j];
  return { entries, fresh, remote };
}

/**
 * Writes blocks[k] to slots[k] (ascending): runs of consecutive slots with
 * one call each, blocks adjacent in memory merged into one buffer; lone
 * slots (reused free slots scattered over the store) together in one call.
 */
function writeSlots(store: Store, slots: readonly SlotNumber[], blocks: readonly Uint8Array[]): void {
  const loneSlots: SlotNumber[] = [];
  const loneBlocks: Uint8Array[] = [];
  let runStart = 0;
  for (let k = 1; k <= slots.length; k++) {
    if (k === slots.length || slots[k] !== slots[k - 1] + 1) {
      if (k - runStart === 1) {
        loneSlots.push(slots[runStart]);
        loneBlocks.push(blocks[runStart]);
        runStart = k;
        continue;
      }
      const bufs: Uint8Array[] = [];
      for (let j = runStart; j < k; j++) {
        const b = blocks[j];
        const last = bufs[bufs.length - 1];
        if (last && adjacent(last, b)) bufs[bufs.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.length + b.length);
        else bufs.push(b);
      }
      store.blocks.write(slots[runStart], bufs);
      runStart = k;
    }
  }
  if (loneSlots.length > 0) store.blocks.writeScattered(loneSlots, loneBlocks);
}

/** A compressed block's place in the run of new containers: byte offset into the run, and length. */
interface Fragment {
  block: number;
  at: number;
  length: number;
}

/**
 * Compresses blocks and packs the fragments into a run of container slots
 * (fragment-run.ts). `raw`: indexes of blocks that do not shrink enough,
 * stored as they are.
 */
export function packBlocks(spec: CodecSpec, blocks: readonly Uint8Array[]): { raw: number[]; run: FragmentRun; packed: Fragment[] } {
  const raw: number[] = [];
  const packed: Fragment[] = [];
  const run = fragmentRun();
  compressEach(spec, blocks, (i, buf, at, length) => {
    if (length === 0) raw.push(i);
    else packed.push({ block: i, at: run.add(buf, at, length), length });
  });
  return { raw, run, packed };
}
