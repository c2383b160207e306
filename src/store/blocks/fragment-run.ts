/**
 * A run of new container slots filled with fragments one after another: new
 * compressed blocks (placement.ts) and moved ones (relocate.ts) are packed
 * the same way. A fragment may cross from one slot into the next, so only
 * the run's tail is wasted. (dm-vdo packs first fit and never crosses a
 * slot; with fragments over 2 KiB, as lz4 leaves many, that wastes up to
 * half of each slot.) The run is kept in 1 MiB pieces of whole slots, a
 * fragment split where a piece ends: memory follows the compressed size,
 * and the pieces are written as they are, from the run's first slot.
 */
import { packedLocation, type PackedLocation } from './location.js';
import { BLOCK_SIZE, type SlotNumber } from '../core/types.js';

const PIECE = 1 << 20;

export interface FragmentRun {
  /** Appends src[from, from + length); returns where it starts, in bytes from the run's start. */
  add(src: Uint8Array, from: number, length: number): number;
  /** Slots the run fills. */
  slots(): number;
  /** Its bytes, whole slots, to write from the first slot of the run. */
  pieces(): Buffer[];
}

export function fragmentRun(): FragmentRun {
  const full: Buffer[] = [];
  let piece = Buffer.alloc(PIECE);
  let used = 0;
  let total = 0;
  return {
    add(src, from, length) {
      const start = total;
      total += length;
      const end = from + length;
      while (from < end) {
        const n = Math.min(end - from, PIECE - used);
        piece.set(src.subarray(from, from + n), used);
        used += n;
        from += n;
        if (used === PIECE) {
          full.push(piece);
          piece = Buffer.alloc(PIECE);
          used = 0;
        }
      }
      return start;
    },
    slots: () => Math.ceil(total / BLOCK_SIZE),
    pieces: () => (used > 0 ? [...full, piece.subarray(0, Math.ceil(used / BLOCK_SIZE) * BLOCK_SIZE)] : full),
  };
}

/** The location of a fragment at byte `at` of a run written to `slots`. */
export function fragmentLocation(slots: readonly SlotNumber[], at: number, length: number, codec: number): PackedLocation {
  const c = Math.floor(at / BLOCK_SIZE);
  return packedLocation(slots[c], at - c * BLOCK_SIZE, length, codec);
}
