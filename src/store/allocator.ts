/**
 * Slot allocation. Runs only inside the write transaction that will commit
 * the references, so two processes can never be handed the same slot, and a
 * crash before the commit leaves the slots free, not leaked.
 *
 * Ordering invariant: a flush allocates before it applies decrements, so a
 * slot freed by a transaction is never reused by that same transaction (its
 * old contents must survive a rollback).
 */
import type Database from 'better-sqlite3';
import { StrataError } from '../errors.js';
import { metaNumber, setMeta } from './store.js';
import { prepared } from './statements.js';
import { MAX_SLOT, type SlotNumber } from './types.js';

/** Returns `n` free slots in ascending order, lowest first so new data lands in runs. */
export function allocateSlots(db: Database.Database, n: number): SlotNumber[] {
  if (n === 0) return [];
  const reused = prepared(db, 'SELECT slot FROM free_slots ORDER BY slot LIMIT ?').pluck().all(n) as number[];
  if (reused.length > 0) {
    prepared(db, 'DELETE FROM free_slots WHERE slot IN (SELECT slot FROM free_slots ORDER BY slot LIMIT ?)').run(reused.length);
  }
  const fresh = n - reused.length;
  const next = metaNumber(db, 'next_slot');
  if (next + fresh - 1 > MAX_SLOT) throw new StrataError('E_NO_SPACE', `store is full: more than ${MAX_SLOT + 1} distinct blocks`);
  const out = reused as SlotNumber[];
  for (let i = 0; i < fresh; i++) out.push((next + i) as SlotNumber);
  if (fresh > 0) setMeta(db, 'next_slot', next + fresh);
  return out;
}
