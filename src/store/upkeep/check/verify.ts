/**
 * Check pass: the data. Every slot in use is read (decompressed where
 * packed) and its hash compared with the hash recorded for it.
 */
import type { Store } from '../../core/store.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from '../../core/types.js';
import type { FaultSink } from './faults.js';

/** Slots read per pread while verifying: 1 MiB. */
const VERIFY_RUN = 256;

/**
 * Reads slots in runs of consecutive numbers and compares each block's hash with its index row.
 * Unverified reads: check does the comparing itself, to name each bad slot rather than stop at the first.
 */
export function verifySlots(store: Store, slots: readonly number[], hashes: Map<number, number>, fault: FaultSink, onProgress?: OnProgress): number {
  const buf = Buffer.allocUnsafe(VERIFY_RUN * BLOCK_SIZE);
  const total = slots.length * BLOCK_SIZE;
  let verified = 0;
  let i = 0;
  while (i < slots.length) {
    onProgress?.(i * BLOCK_SIZE, total);
    let n = 1;
    while (i + n < slots.length && n < VERIFY_RUN && slots[i + n] === slots[i] + n) n++;
    try {
      store.readUnverified(slots[i] as SlotNumber, n, buf, 0);
    } catch (e) {
      // Fall back to one slot at a time, so one short file names the slots it lost.
      for (let k = 0; k < n; k++) verified += verifyOne(store, slots[i + k], hashes, fault, buf) ? 1 : 0;
      i += n;
      continue;
    }
    for (let k = 0; k < n; k++) {
      const block = buf.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
      if (store.hash(block) !== hashes.get(slots[i + k])) fault('corruption', 'bad-hash', `slot ${slots[i + k]}: content does not match its hash`, false, slots[i + k]);
      verified++;
    }
    i += n;
  }
  onProgress?.(total, total);
  return verified;
}

function verifyOne(store: Store, slot: number, hashes: Map<number, number>, fault: FaultSink, buf: Buffer): boolean {
  try {
    store.readUnverified(slot as SlotNumber, 1, buf, 0);
  } catch (e) {
    fault('corruption', 'unreadable-slot', `slot ${slot}: cannot be read (${(e as Error).message})`, false, slot);
    return false;
  }
  if (store.hash(buf.subarray(0, BLOCK_SIZE)) !== hashes.get(slot)) fault('corruption', 'bad-hash', `slot ${slot}: content does not match its hash`, false, slot);
  return true;
}
