/**
 * The doors to the store's SQLite index. A Reader may read it; a WriteTx,
 * handed out only by store.write(), may also change it. A function that must
 * run inside a write transaction says so by taking a WriteTx, so the compiler
 * keeps the rule no comment could. Both hold the connection behind a symbol
 * that no wing's index exports, so nothing outside src/store/ reaches SQLite.
 */
import type Database from 'better-sqlite3';
import { StrataError } from '../../errors.js';

const SQL: unique symbol = Symbol('strata.sql');
declare const writing: unique symbol;

export interface Reader {
  readonly [SQL]: Database.Database;
}

export interface WriteTx extends Reader {
  readonly [writing]: true;
}

/** The connection behind a door. Only src/store/ (and tests, through test/helpers/sql.ts) calls this. */
export function sqlOf(r: Reader): Database.Database {
  return r[SQL];
}

/**
 * Runs `fn` in one read transaction: everything it reads is of one committed
 * state, whatever other processes commit meanwhile (figures that must add
 * up, a lookup and what it leads to). Inside a write transaction it is part
 * of that one.
 */
export function readTx<T>(r: Reader, fn: () => T): T {
  return sqlOf(r).transaction(fn).deferred();
}

/** A number that moves whenever another connection commits (SQLite's data_version): a cheap "has anything changed?". */
export function dataVersion(r: Reader): number {
  return sqlOf(r).pragma('data_version', { simple: true }) as number;
}

/**
 * The write door of the write transaction `r`'s connection is in: for store
 * code handed the Store inside a caller's store.write() (the allocator, the
 * leases). Outside a transaction it throws rather than let a write commit
 * on its own. Store-internal, like sqlOf.
 */
export function heldTx(r: Reader): WriteTx {
  const db = sqlOf(r);
  if (!db.inTransaction) throw new StrataError('E_INTERNAL', 'a store write was attempted outside a write transaction');
  return writeTxOn(db);
}

/** A read door on a connection. */
export function readerOn(db: Database.Database): Reader {
  return { [SQL]: db };
}

/** A write door on a connection that is inside a write transaction: only store.write() makes one. */
export function writeTxOn(db: Database.Database): WriteTx {
  return { [SQL]: db } as WriteTx;
}
