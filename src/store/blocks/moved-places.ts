/**
 * Old places of moved blocks: the own slot a block leaves when compress packs
 * it into a container or eviction leaves it only in the bucket. The block
 * keeps its slot number, so nothing frees that place; it is punched here.
 *
 * Not at once: a pinned reader (a read-only open of a leaf, a check) keeps
 * the segments and locations it resolved when it opened, and may still look
 * for the block in its old place after another process's commit stopped
 * naming it there (busy.ts protects only what leased images name now). So a
 * move records each old place, in its own transaction, stamped with a new
 * free epoch, and the place is punched only once no pinned lease older than
 * that epoch remains: the rule freed slots follow (freelist.ts). Recorded
 * with the move, a crash before the punch leaks nothing: the next mover or
 * gc punches what is due.
 *
 * At punch time the slot must still be live and its block still elsewhere
 * (packed or remote); if it came back to its own place (uncompressed,
 * fetched) or was freed since, the place is not an old one any more and its
 * record just goes.
 */
import { newFreeEpoch, reusableEpoch } from '../slots/freelist.js';
import { ownPlaceUnused } from './location.js';
import { prepared } from '../core/statements.js';
import { slotReader } from '../slots/slots.js';
import type { Store } from '../core/store.js';
import type { SlotNumber } from '../core/types.js';
import { heldTx, sqlOf, type WriteTx } from '../core/tx.js';

/** Records the own places of `slots`, whose blocks this transaction moves elsewhere. Call inside it. */
export function recordMovedPlaces(tx: WriteTx, slots: readonly number[]): void {
  const db = sqlOf(tx);
  if (slots.length === 0) return;
  const epoch = newFreeEpoch(tx);
  // A newer move of the same slot (moved back, then again) waits for its own readers.
  const put = prepared(db, 'INSERT INTO moved_places(slot, epoch) VALUES (?, ?) ON CONFLICT(slot) DO UPDATE SET epoch = excluded.epoch');
  for (const s of slots) put.run(s, epoch);
}

/** Punches the recorded old places no live reader may still read; returns how many. Only inside a write transaction (it throws outside one). */
export function punchMovedPlaces(store: Store): number {
  const db = sqlOf(heldTx(store));
  const due = prepared(db, 'SELECT slot FROM moved_places WHERE epoch <= ? ORDER BY slot').pluck().all(reusableEpoch(store)) as number[];
  if (due.length === 0) return 0;
  const now = slotReader(store);
  const drop = prepared(db, 'DELETE FROM moved_places WHERE slot = ?');
  const old: number[] = [];
  for (const s of due) {
    if (now.refcount(s) > 0 && ownPlaceUnused(now.loc(s))) old.push(s);
    drop.run(s);
  }
  let punched = 0;
  for (let i = 0; i < old.length; ) {
    let n = 1;
    while (i + n < old.length && old[i + n] === old[i] + n) n++;
    if (store.blocks.release(old[i] as SlotNumber, n)) punched += n;
    i += n;
  }
  return punched;
}
