/**
 * Refcounts: how many map entries, over all images, point at a slot.
 * A slot whose count reaches zero moves to the free list in the same
 * transaction; other processes see it free only once that commits.
 */
import type Database from 'better-sqlite3';
import { corrupt } from '../errors.js';
import { freeSlots } from './freelist.js';
import { indexSlots, slotEditor } from './slots.js';
import type { BlockHash } from './hash.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from './types.js';

export type RefDeltas = Map<number, number>;

export function addRef(d: RefDeltas, slot: number, by: number): void {
  const v = (d.get(slot) ?? 0) + by;
  if (v === 0) d.delete(slot);
  else d.set(slot, v);
}

export interface ApplyOptions {
  /** Counts the slots updated, as 4 KiB each: for rm or flatten of a large image this loop is most of the time. */
  onProgress?: OnProgress;
  /**
   * Where the dedup index rows of `fresh` slots go: 'now' adds them in this
   * transaction; an array collects them (hash, slot, ...) for the caller to
   * add later in one sorted batch (the index is a hint: see slots.ts).
   */
  index?: 'now' | number[];
}

/**
 * Applies deltas inside a write transaction. `fresh` are slots allocated by
 * this transaction, with the hash of what was written to them; their
 * refcount starts at their delta, and one referenced by nothing in the end
 * goes straight back to the free list.
 */
export function applyRefDeltas(db: Database.Database, deltas: RefDeltas, fresh: Map<SlotNumber, BlockHash> = new Map(), opts: ApplyOptions = {}): void {
  const { onProgress } = opts;
  const edit = slotEditor(db);
  const freed: number[] = [];
  const pairs: number[] = Array.isArray(opts.index) ? opts.index : [];
  for (const [slot, hash] of fresh) {
    const d = deltas.get(slot) ?? 0;
    if (d > 0) {
      edit.set(slot, d, hash);
      pairs.push(hash, slot);
    } else freed.push(slot); // written but, in the end, referenced by nothing
  }
  const total = deltas.size * BLOCK_SIZE;
  let i = 0;
  for (const [slot, d] of deltas) {
    if (onProgress && i++ % 1024 === 0) onProgress(i * BLOCK_SIZE, total);
    if (fresh.has(slot as SlotNumber)) continue;
    const cur = edit.get(slot);
    if (cur === 0) throw corrupt(`map references slot ${slot}, whose refcount is 0`, { slot });
    const next = cur + d;
    if (next < 0) throw corrupt(`refcount of slot ${slot} would fall below zero`, { slot });
    edit.set(slot, next);
    if (next === 0) freed.push(slot);
  }
  edit.commit();
  if (opts.index === undefined || opts.index === 'now') indexSlots(db, pairs);
  freeSlots(db, freed);
  onProgress?.(total, total);
}
