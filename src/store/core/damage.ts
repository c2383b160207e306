/**
 * The store's damage mark, as qcow2's corrupt bit and LevelDB's background
 * error: the first certain damage strata finds in its own store (an
 * isStoreDamage() error: a refcount below zero, a map naming a free slot, a
 * block failing its hash) is recorded in meta, in a transaction of its own
 * so that it outlives the one that failed, and from then on every write is
 * refused with E_CORRUPT naming that first damage, until `check --repair`
 * finds the store sound and clears it. Reads go on, as qemu lets a corrupt
 * qcow2 be read: a damaged block is refused by its own read anyway.
 *
 * Why writes stop: a store whose refcounts or free list are wrong can hand a
 * live block's slot to new data, and every write after the first sign of
 * that makes it worse and harder to repair. Only damage no reader racing a
 * writer could see is marked (errors.ts: storeCorrupt vs corrupt).
 */
import { StrataError, isStoreDamage } from '../../errors.js';
import { prepared } from './statements.js';
import { dropMeta, metaValue } from './meta.js';
import { sqlOf, type Reader, type WriteTx } from './tx.js';

const KEY = 'damage';

/**
 * The write door that a mark does not close, for what must run on a damaged
 * store: check and its repair, a lazy clone's read filling its own slot. Not
 * exported from the wing's index: nothing outside src/store/ opens it.
 */
export const DESPITE_DAMAGE: unique symbol = Symbol('strata.despite-damage');

export interface StoreDamage {
  /** The first damage found, as its error said it. */
  message: string;
  /** When (ISO time). */
  at: string;
}

/** The mark, if the store carries one. */
export function storeDamage(on: Reader): StoreDamage | undefined {
  const stored = metaValue(on, KEY);
  if (stored === undefined) return undefined;
  const v = String(stored);
  try {
    const d = JSON.parse(v) as Partial<StoreDamage>;
    return { message: String(d.message ?? v), at: String(d.at ?? '') };
  } catch {
    return { message: v, at: '' };
  }
}

/** What every write meets on a marked store: one line naming the first damage and the way out. */
export function damageRefusal(dir: string, d: StoreDamage): StrataError {
  return new StrataError('E_CORRUPT', `store ${dir} is damaged (${d.message}${d.at ? `, found ${d.at}` : ''}); writes are refused: run strata check --repair`, {
    store: dir,
    damage: d.message,
  });
}

/**
 * Records `e` when it is certain damage and the store carries no mark yet;
 * the first damage is the one a user needs. Called by the store's doors
 * with the connection outside any transaction (the failed one rolled back).
 */
export function recordDamage(on: Reader, e: unknown): void {
  if (!isStoreDamage(e)) return;
  const db = sqlOf(on);
  if (db.readonly || db.inTransaction) return;
  const value = JSON.stringify({ message: e.message, at: new Date().toISOString() });
  try {
    db.transaction(() => prepared(db, 'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING').run(KEY, value)).immediate();
  } catch {
    // A store that cannot take the mark (disk full, locked): the damage error itself still reaches the user.
  }
}

/** Clears the mark: only check --repair, once it finds the store sound (upkeep/check.ts). */
export function clearDamage(tx: WriteTx): void {
  dropMeta(tx, KEY);
}
