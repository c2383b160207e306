/**
 * Garbage collection: gives the space of free slots back to the file system.
 *
 * - Tail: slots past the highest slot in use are dropped altogether: their
 *   free_slots rows go, meta.next_slot comes down, the data files are cut.
 * - Inside: free slots below that are punched (fallocate PUNCH_HOLE) where
 *   the backend can; they stay on the free list, reusable as before.
 *
 * Only slots that no live lease may still see are touched (freelist.ts):
 * a reader of a leaf, or a check, that dates from before a slot was freed
 * keeps reading its old bytes until it ends.
 *
 * Data files are cut, never unlinked: another process may hold one open,
 * and a file replaced under it would take its next writes into a deleted
 * inode (and show it stale reads). An emptied file stays, 0 bytes long.
 *
 * Everything happens inside one write transaction. Slots are only ever
 * allocated and written inside a write transaction (see allocator.ts and
 * placement.ts), so while gc holds the lock no writer can be handed a slot
 * it is punching or cutting off. Ordering: the rows go first and the files
 * are cut after, inside the transaction; if the commit then fails, the free
 * list still names slots past the end of a file, which is harmless (a write
 * there extends the file; nothing reads a free slot).
 *
 * A throw from `onProgress` (Ctrl-C in the CLI) rolls the transaction back
 * the same way: the rows are as before, and what was already cut or punched
 * held only free slots, so it stays returned to the file system.
 */
import { nativeStatus } from '../blocks/native.js';
import { highestLiveSlot, pruneIndex } from '../slots/slots.js';
import { faultPoint } from '../core/faults.js';
import { reusableEpoch } from '../slots/freelist.js';
import { metaNumber, setMeta } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from '../core/types.js';
import { sqlOf } from '../core/tx.js';
import { repackContainers, type RepackReport } from './relocate.js';

export interface GcOptions {
  /**
   * Punch only slots freed after this free epoch (meta.free_epoch read before
   * the freeing transaction): what `rm` just freed, not the whole free list.
   * The tail is cut as always.
   */
  freedAfter?: number;
  /** Bytes of free slots gone through; may throw to stop (see the note above). */
  onProgress?: OnProgress;
}

/** What became of the slots freed after `freedAfter`. */
export interface FreedReport {
  /** Slots freed since the epoch. */
  slots: number;
  /** Of those, given back to the file system (cut from the tail, or punched). */
  reclaimed: number;
  /** Of those, still visible to a live reader (or check): kept until it ends. */
  pinned: number;
}

export interface GcReport {
  /** Stale rows dropped from the dedup index (slots freed or reused since they were indexed). */
  indexRowsPruned: number;
  /** Slots punched inside the data files (0 where punching is unsupported). */
  punchedSlots: number;
  /** Whether the backend could punch holes; if not, only the tail was reclaimed. */
  punchSupported: boolean;
  /** Slots cut off the end of the store. */
  truncatedSlots: number;
  nextSlotBefore: number;
  nextSlotAfter: number;
  /** Allocated bytes of the data files before and after, as the file system reports them. */
  allocatedBytesBefore: number;
  allocatedBytesAfter: number;
  reclaimedBytes: number;
  elapsedMs: number;
  /** With `freedAfter`: the slots freed since then. */
  freed?: FreedReport;
  /** A full gc's repacking of half-empty containers of compressed blocks (relocate.ts). */
  repack?: RepackReport;
}

export function collectGarbage(store: Store, opts: GcOptions = {}): GcReport {
  const t0 = performance.now();
  // First, in its own transaction: the containers it empties must be free (committed) before they are punched.
  const repack = opts.freedAfter === undefined ? repackContainers(store) : undefined;
  const r = store.write((tx) => {
    const db = sqlOf(tx);
    const before = store.blocks.diskUsage().allocated;
    const nextBefore = metaNumber(tx, 'next_slot');
    const limit = reusableEpoch(store);
    // The store ends after the last slot in use or still visible to a live lease.
    const inUse = highestLiveSlot(tx);
    const pinned = db.prepare('SELECT max(slot) FROM free_slots WHERE epoch > ?').pluck().get(limit) as number | null;
    const highest = Math.max(inUse, pinned ?? -1);
    const nextAfter = highest + 1;
    const since = opts.freedAfter;
    let freed: FreedReport | undefined;
    if (since !== undefined) {
      const count = (where: string, ...args: number[]) => db.prepare(`SELECT count(*) FROM free_slots WHERE epoch > ? ${where}`).pluck().get(since, ...args) as number;
      freed = { slots: count(''), reclaimed: count('AND slot >= ?', nextAfter), pinned: count('AND epoch > ?', limit) };
    }
    if (nextAfter < nextBefore) {
      db.prepare('DELETE FROM free_slots WHERE slot >= ?').run(nextAfter);
      db.prepare('DELETE FROM moved_places WHERE slot >= ?').run(nextAfter);
      setMeta(tx, 'next_slot', nextAfter);
      faultPoint('gc.after-claim');
      store.blocks.truncate(nextAfter);
      faultPoint('gc.after-truncate');
    }
    let punched = 0;
    // Known for sure once a release has been tried; until then, what the addon says of itself.
    let supported = nativeStatus().mode === 'native';
    let tried = false;
    let runStart = -1;
    let runLen = 0;
    const flush = () => {
      if (runLen === 0 || (tried && !supported)) return;
      tried = true;
      supported = true;
      if (store.blocks.release(runStart as SlotNumber, runLen)) {
        punched += runLen;
        if (freed) freed.reclaimed += runLen;
      }
      else supported = false;
      faultPoint('gc.after-punch');
      runLen = 0;
    };
    // Epochs start at 0, so without `freedAfter` every reusable free slot is taken.
    const free = db.prepare('SELECT slot FROM free_slots WHERE epoch <= ? AND epoch > ? ORDER BY slot').pluck().all(limit, since ?? -1) as number[];
    const total = free.length * BLOCK_SIZE;
    for (let i = 0; i < free.length; i++) {
      const slot = free[i];
      if (tried && !supported) break;
      if (i % 1024 === 0) opts.onProgress?.(i * BLOCK_SIZE, total);
      if (runLen > 0 && slot === runStart + runLen) runLen++;
      else {
        flush();
        runStart = slot;
        runLen = 1;
      }
    }
    flush();
    // The dedup index is a hint; rows naming freed or reused slots only cost failed looks, so they
    // go here. The walk reads the whole index: only a full gc does it, not the reclaim after rm
    // (`freedAfter`), whose cost must follow what rm freed, not the size of the store.
    const pruned = since === undefined ? pruneIndex(tx, Math.min(nextAfter, nextBefore)) : 0;
    faultPoint('gc.before-commit');
    const after = store.blocks.diskUsage().allocated;
    return {
      punchedSlots: punched,
      indexRowsPruned: pruned,
      punchSupported: supported,
      truncatedSlots: nextBefore - Math.min(nextAfter, nextBefore),
      nextSlotBefore: nextBefore,
      nextSlotAfter: Math.min(nextAfter, nextBefore),
      allocatedBytesBefore: before,
      allocatedBytesAfter: after,
      reclaimedBytes: Math.max(0, before - after),
      ...(freed ? { freed } : {}),
      ...(repack ? { repack } : {}),
      elapsedMs: 0,
    };
  });
  faultPoint('gc.after-commit');
  r.elapsedMs = Math.round(performance.now() - t0);
  return r;
}
