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
 * What a store function that only reads accepts while callers move to the
 * doors: a Reader, or the connection itself. The second form goes when
 * Store.db does.
 */
export type DbLike = Reader | Database.Database;

/**
 * What a store function that changes the index accepts while callers move to
 * the doors: the WriteTx of the transaction it runs in, or the connection
 * itself. The second form goes when Store.db does, and then only a WriteTx
 * can change the index.
 */
export type WriteDoor = WriteTx | Database.Database;

/** The connection behind a door. Only src/store/ (and tests, through test/helpers/sql.ts) calls this. */
export function sqlOf(r: DbLike): Database.Database {
  return SQL in r ? r[SQL] : r;
}

/**
 * Runs `fn` in one read transaction: everything it reads is of one committed
 * state, whatever other processes commit meanwhile (figures that must add
 * up, a lookup and what it leads to). Inside a write transaction it is part
 * of that one.
 */
export function readTx<T>(r: DbLike, fn: () => T): T {
  return sqlOf(r).transaction(fn).deferred();
}

/** A number that moves whenever another connection commits (SQLite's data_version): a cheap "has anything changed?". */
export function dataVersion(r: DbLike): number {
  return sqlOf(r).pragma('data_version', { simple: true }) as number;
}

/** A read door on a connection. */
export function readerOn(db: Database.Database): Reader {
  return { [SQL]: db };
}

/** A write door on a connection that is inside a write transaction: only store.write() makes one. */
export function writeTxOn(db: Database.Database): WriteTx {
  return { [SQL]: db } as WriteTx;
}
