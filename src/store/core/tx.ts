/**
 * The doors to the store's SQLite index. A Reader may read it; a WriteTx,
 * handed out only by store.write(), may also change it. A function that must
 * run inside a write transaction says so by taking a WriteTx, so the compiler
 * keeps the rule no comment could. Both hold the connection behind a symbol
 * that no wing's index exports, so nothing outside src/store/ reaches SQLite.
 */
import type Database from 'better-sqlite3';

const SQL: unique symbol = Symbol('strata.sql');
declare const writing: unique symbol;

export interface Reader {
  readonly [SQL]: Database.Database;
}

export interface WriteTx extends Reader {
  readonly [writing]: true;
}

/**
 * What store functions accept while callers move to the doors: a Reader, or
 * the connection itself. The second form goes when Store.db does.
 */
export type DbLike = Reader | Database.Database;

/** The connection behind a door. Only src/store/ calls this. */
export function sqlOf(r: DbLike): Database.Database {
  return SQL in r ? r[SQL] : r;
}

/** A read door on a connection. */
export function readerOn(db: Database.Database): Reader {
  return { [SQL]: db };
}

/** A write door on a connection that is inside a write transaction: only store.write() makes one. */
export function writeTxOn(db: Database.Database): WriteTx {
  return { [SQL]: db } as WriteTx;
}
