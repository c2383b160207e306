/**
 * The one value every check pass shares: the store under check, whether to
 * repair, the end of its slots, where faults go, and the repairs gathered
 * for the slot tables (committed together by repair.ts).
 */
import type Database from 'better-sqlite3';
import { metaNumber } from '../../core/meta.js';
import type { Store } from '../../core/store.js';
import { heldTx, sqlOf, type WriteTx } from '../../core/tx.js';
import { slotEditor, type SlotEdit } from '../../slots/slots.js';
import { faultSink, type Fault, type FaultSink } from './faults.js';

export interface CheckContext {
  readonly store: Store;
  readonly db: Database.Database;
  /** A write door to repair, else the read transaction's (then the editor is given nothing to change). */
  readonly tx: WriteTx;
  readonly repair: boolean;
  /** next_slot: every slot the store has handed out lies below it. */
  readonly next: number;
  readonly fault: FaultSink;
  /** Every fault so far, in the order reported. */
  readonly faults: Fault[];
  /** Refcount, hash and location repairs, written at once by repair.ts. */
  readonly edit: SlotEdit;
  /** Slots repair puts on the free list, stamped together (freelist.ts). */
  readonly toFree: number[];
}

/** Inside the check's transaction: the editor reads nothing until a pass asks it. */
export function checkContext(store: Store, repair: boolean): CheckContext {
  const db = sqlOf(store);
  const tx = heldTx(store);
  const faults: Fault[] = [];
  return { store, db, tx, repair, next: metaNumber(store, 'next_slot'), fault: faultSink(faults), faults, edit: slotEditor(tx), toFree: [] };
}
