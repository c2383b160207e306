/**
 * Refcounts: how many map entries, over all images, point at a slot.
 * A slot whose count reaches zero moves to the free list in the same
 * transaction; other processes see it free only once that commits.
 */
import type Database from 'better-sqlite3';
import { corrupt } from '../errors.js';
import { freeSlots } from './freelist.js';
import { prepared } from './statements.js';
import type { BlockHash } from './hash.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from './types.js';

export type RefDeltas = Map<number, number>;

export function addRef(d: RefDeltas, slot: number, by: number): void {
  const v = (d.get(slot) ?? 0) + by;
  if (v === 0) d.delete(slot);
  else d.set(slot, v);
}

/**
 * Applies deltas. `fresh` are slots allocated by this transaction, with the
 * hash of what was written to them; they get their block-index row here.
 * `onProgress` counts the slots updated, as 4 KiB each: for rm or flatten of
 * a large image this loop is most of the time.
 */
export function applyRefDeltas(db: Database.Database, deltas: RefDeltas, fresh: Map<SlotNumber, BlockHash> = new Map(), onProgress?: OnProgress): void {
  const insert = prepared(db, 'INSERT INTO blocks(slot, hash, refcount) VALUES (?, ?, ?)');
  const get = prepared(db, 'SELECT refcount FROM blocks WHERE slot = ?').pluck();
  const update = prepared(db, 'UPDATE blocks SET refcount = ? WHERE slot = ?');
  const remove = prepared(db, 'DELETE FROM blocks WHERE slot = ?');
  const freed: number[] = [];

  // New index rows go in 200 to a statement: one SQLite call instead of one per slot.
  const rows: number[] = [];
  const insertMany = prepared(db, `INSERT INTO blocks(slot, hash, refcount) VALUES ${Array(200).fill('(?, ?, ?)').join(',')}`);
  for (const [slot, hash] of fresh) {
    const d = deltas.get(slot) ?? 0;
    if (d > 0) rows.push(slot, hash, d);
    else freed.push(slot); // written but, in the end, referenced by nothing
    if (rows.length === 600) insertMany.run(...rows.splice(0));
  }
  for (let i = 0; i < rows.length; i += 3) insert.run(rows[i], rows[i + 1], rows[i + 2]);
  // Increments before decrements: a slot moving between images never touches zero.
  const order = [...deltas].filter(([s]) => !fresh.has(s as SlotNumber)).sort((a, b) => b[1] - a[1]);
  const total = order.length * BLOCK_SIZE;
  for (let i = 0; i < order.length; i++) {
    const [slot, d] = order[i];
    if (onProgress && i % 1024 === 0) onProgress(i * BLOCK_SIZE, total);
    const cur = get.get(slot) as number | undefined;
    if (cur === undefined) throw corrupt(`map references slot ${slot}, which has no block-index row`, { slot });
    const next = cur + d;
    if (next < 0) throw corrupt(`refcount of slot ${slot} would fall below zero`, { slot });
    if (next === 0) {
      remove.run(slot);
      freed.push(slot);
    } else update.run(next, slot);
  }
  freeSlots(db, freed);
  onProgress?.(total, total);
}
