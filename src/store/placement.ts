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
import { prepared } from './statements.js';
import type { BlockHash } from './hash.js';
import type { Store } from './store.js';
import { faultPoint } from './faults.js';

/** Candidates compared per hash: a flood of colliding blocks degrades dedup, never correctness or speed. */
const MAX_CANDIDATES = 8;

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

export function isZeroBlock(b: Uint8Array): boolean {
  return b.length === BLOCK_SIZE ? Buffer.compare(b, ZERO_BLOCK) === 0 : b.every((x) => x === 0);
}

/** Hash lookups per statement: one SQLite call answers a batch instead of one block. */
const LOOKUP_BATCH = 500;

/** Committed slots whose hash is one of `hashes`, up to MAX_CANDIDATES each. */
function candidatesFor(store: Store, hashes: readonly BlockHash[]): Map<BlockHash, number[]> {
  const out = new Map<BlockHash, number[]>();
  const wanted = [...new Set(hashes.filter((h) => h !== -1))];
  const full = prepared(store.db, `SELECT hash, slot FROM blocks WHERE hash IN (${Array(LOOKUP_BATCH).fill('?').join(',')})`).raw();
  for (let i = 0; i < wanted.length; i += LOOKUP_BATCH) {
    const part = wanted.slice(i, i + LOOKUP_BATCH);
    // The last, shorter batch varies in size: prepared once, not cached.
    const stmt = part.length === LOOKUP_BATCH ? full : store.db.prepare(`SELECT hash, slot FROM blocks WHERE hash IN (${part.map(() => '?').join(',')})`).raw();
    for (const [h, slot] of stmt.all(...part) as [number, number][]) {
      const list = out.get(h);
      if (!list) out.set(h, [slot]);
      else if (list.length < MAX_CANDIDATES) list.push(slot);
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
  const known = candidatesFor(store, hashes);
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
    // Like the index lookup, a batch keeps MAX_CANDIDATES per hash: a collision flood costs dedup, not time.
    if (!same) batch.set(h, [i]);
    else if (same.length < MAX_CANDIDATES) same.push(i);
  }

  const fresh = new Map<SlotNumber, BlockHash>();
  const slots = allocateSlots(store, newBlocks.length);
  // Write runs of consecutive slots with one call each; blocks adjacent in memory merge into one buffer.
  let runStart = 0;
  for (let k = 1; k <= newBlocks.length; k++) {
    if (k === newBlocks.length || slots[k] !== slots[k - 1] + 1) {
      const bufs: Uint8Array[] = [];
      for (let j = runStart; j < k; j++) {
        const b = blocks[newBlocks[j]];
        const last = bufs[bufs.length - 1];
        if (last && adjacent(last, b)) bufs[bufs.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.length + b.length);
        else bufs.push(b);
      }
      store.blocks.write(slots[runStart], bufs);
      runStart = k;
    }
  }
  for (let k = 0; k < newBlocks.length; k++) {
    const i = newBlocks[k];
    entries[i] = slotEntry(slots[k]);
    fresh.set(slots[k], hashes[i]);
  }
  for (let i = 0; i < blocks.length; i++) if (owner[i] >= 0) entries[i] = entries[owner[i]];
  faultPoint('flush.after-data-write');
  // Ordering: the data must be durable before the transaction that references it commits.
  if (newBlocks.length > 0) store.blocks.sync();
  faultPoint('flush.after-data-sync');
  return { entries, fresh };
}
