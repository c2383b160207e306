/**
 * Every block read is checked against the hash recorded for its slot
 * (slot_hashes, slots.ts), as ZFS checks each read against its checksum: a
 * block whose bytes rotted on disk is refused with E_CORRUPT naming the
 * slot, never handed on as data. Callers above the store (image.ts) add the
 * image and byte offset; the NBD server answers EIO for that request only.
 *
 * Hashing runs in the addon (native/strata_native.c: pread and XXH64 in one
 * call for blocks in their own slot, XXH64 alone after a fragment is
 * decoded), so no JS loop over blocks sits on the event loop; without the
 * addon, or with a store opened on a hash of its own (tests that craft
 * collisions), each block is hashed in JS.
 *
 * Expected hashes are cached per database handle, a row of 4096 slots at a
 * time (slots.ts), dropped when this process saves the row. Another
 * process's commits do not drop them: a slot gets a new hash only when it is
 * (re)allocated or a fetched block lands in it, and such a slot is in no
 * view opened before. So a block that differs from its cached hash is
 * checked again against the row as committed now; only a block that differs
 * from that too is damaged. Zero blocks and holes are never read, so never
 * checked.
 */
import { StrataError, storeCorrupt } from '../../errors.js';
import type { HashFn } from '../core/hash.js';
import { nativeBlockHash } from './native.js';
import { LOC_CHUNK_SLOTS, cachedHashesRow } from '../slots/slots.js';
import { BLOCK_SIZE } from '../core/types.js';
import { type Reader } from '../core/tx.js';
import type { ReadCheck } from './locations.js';

/**
 * `xxh64`: `hash` is the store's XXH64 (not a test's own function), so the
 * addon's XXH64 computes the same values.
 */
export function readCheck(on: Reader, hash: HashFn, xxh64: boolean): ReadCheck {
  const rowOf = (chunk: number): Float64Array => cachedHashesRow(on, chunk);
  const native = xxh64 ? nativeBlockHash() : null;
  return {
    readsNative: native !== null,
    expected(first, count) {
      const chunk = Math.floor(first / LOC_CHUNK_SLOTS);
      const from = first - chunk * LOC_CHUNK_SLOTS;
      if (from + count <= LOC_CHUNK_SLOTS) return rowOf(chunk).subarray(from, from + count);
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        const s = first + i;
        const c = Math.floor(s / LOC_CHUNK_SLOTS);
        out[i] = rowOf(c)[s - c * LOC_CHUNK_SLOTS];
      }
      return out;
    },
    firstBad(into, at, count, expected) {
      if (native) return native.verify(into, at, count, expected, 0);
      for (let i = 0; i < count; i++) {
        if (hash(into.subarray(at + i * BLOCK_SIZE, at + (i + 1) * BLOCK_SIZE)) !== expected[i]) return i;
      }
      return -1;
    },
    confirm(slot, block) {
      const chunk = Math.floor(slot / LOC_CHUNK_SLOTS);
      const fresh = cachedHashesRow(on, chunk, true);
      if (hash(block.subarray(0, BLOCK_SIZE)) !== fresh[slot - chunk * LOC_CHUNK_SLOTS]) throw damagedBlock(slot);
    },
  };
}

/** A block that does not match its recorded hash: E_CORRUPT naming the slot; image.ts adds the image and offset. */
export function damagedBlock(slot: number): StrataError {
  return storeCorrupt(`the block in slot ${slot} is damaged: its bytes do not match the hash recorded for them`, { slot, damaged: true });
}

/**
 * A damagedBlock() error from a read of `image` whose run of slots from
 * `firstSlot` starts at byte `firstOffset`: E_CORRUPT naming the image, the
 * byte offset of the damaged block, and its slot. Any other error as it is.
 */
export function inImage(e: unknown, image: string, firstSlot: number, firstOffset: number): unknown {
  const slot = damagedSlotOf(e);
  if (slot === undefined) return e;
  const offset = firstOffset + (slot - firstSlot) * BLOCK_SIZE;
  return storeCorrupt(`image ${image}: the block at byte offset ${offset} (slot ${slot}) is damaged: its bytes do not match the hash recorded for them`, { image, offset, slot, damaged: true }, e);
}

/** The slot of a damaged block's error (damagedBlock(), inImage()), or undefined for any other error. */
export function damagedSlotOf(e: unknown): number | undefined {
  if (!(e instanceof StrataError) || e.code !== 'E_CORRUPT') return undefined;
  const d = e.data as { slot?: number; damaged?: boolean } | undefined;
  return d?.damaged === true && typeof d.slot === 'number' ? d.slot : undefined;
}
