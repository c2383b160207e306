/**
 * The one place that decides whether a block of data is new or already
 * stored. Every writer (image flush, import, NBD) goes through placeBlocks.
 *
 * Runs inside the write transaction: the candidates it compares against are
 * committed slots that no other process can free until we commit, and the
 * slots it allocates become referenced in the same commit.
 */
import { BLOCK_SIZE, ZERO, slotEntry, type MapEntry, type SlotNumber } from './types.js';
import { allocateSlots } from './allocator.js';
import type { BlockHash } from './hash.js';
import type { Store } from './store.js';

/** Candidates compared per hash: a flood of colliding blocks degrades dedup, never correctness or speed. */
const MAX_CANDIDATES = 8;

export function isZeroBlock(b: Uint8Array): boolean {
  // Compare 8 bytes at a time where the buffer is aligned for it.
  if (b.byteOffset % 8 === 0 && b.length % 8 === 0) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, b.length / 8);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false;
    return true;
  }
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export interface Placement {
  /** Map entry for each input block, in input order: ZERO or a slot. */
  entries: MapEntry[];
  /** Slots allocated and written by this call, with their hash. */
  fresh: Map<SlotNumber, BlockHash>;
}

/** Hashes outside the transaction; -1 marks an all-zero block. */
export function hashBlocks(store: Store, blocks: readonly Uint8Array[]): BlockHash[] {
  return blocks.map((b) => (isZeroBlock(b) ? -1 : store.hash(b)));
}

/**
 * Finds or stores each block. Call inside store.write(); returns after the
 * new slots are written and synced, so the caller's commit can reference them.
 */
export function placeBlocks(store: Store, blocks: readonly Uint8Array[], hashes: readonly BlockHash[]): Placement {
  const entries: MapEntry[] = new Array(blocks.length);
  const lookup = store.db.prepare('SELECT slot FROM blocks WHERE hash = ? LIMIT ?').pluck();
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
    for (const slot of lookup.all(h, MAX_CANDIDATES) as number[]) {
      store.blocks.read(slot as SlotNumber, 1, scratch, 0);
      // A hash match is only a hint: share the slot only if the bytes are equal.
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
    if (same) same.push(i);
    else batch.set(h, [i]);
  }

  const fresh = new Map<SlotNumber, BlockHash>();
  const slots = allocateSlots(store.db, newBlocks.length);
  // Write runs of consecutive slots with one writev each.
  let runStart = 0;
  for (let k = 1; k <= newBlocks.length; k++) {
    if (k === newBlocks.length || slots[k] !== slots[k - 1] + 1) {
      store.blocks.write(slots[runStart], newBlocks.slice(runStart, k).map((i) => blocks[i]));
      runStart = k;
    }
  }
  for (let k = 0; k < newBlocks.length; k++) {
    const i = newBlocks[k];
    entries[i] = slotEntry(slots[k]);
    fresh.set(slots[k], hashes[i]);
  }
  for (let i = 0; i < blocks.length; i++) if (owner[i] >= 0) entries[i] = entries[owner[i]];
  // Ordering: the data must be durable before the transaction that references it commits.
  if (newBlocks.length > 0) store.blocks.sync();
  return { entries, fresh };
}
