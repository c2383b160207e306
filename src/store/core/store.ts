/**
 * The store: one directory with strata.db (SQLite, WAL) and data/ (slots).
 *
 *   STORE/strata.db      images, maps, block index, refcounts, free slots, leases
 *   STORE/data/NNNNNN.dat
 *   STORE/lock           one byte per lease, held by an OFD lock (lockfile.ts)
 *
 * Store is opened asynchronously (the hash function is WebAssembly and must be
 * instantiated); everything after that is synchronous.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StrataError, badInput, corrupt } from '../../errors.js';
import { openLocalBlocks, syncDirectory, type BlockBackend } from '../blocks/datafiles.js';
import { envFaultyBlocks } from '../blocks/faulty-blocks.js';
import { loadXxh64, type HashFn } from './hash.js';
import { Lru } from './lru.js';
import { openLockFile, type LockFile } from '../leases/lockfile.js';
import { migrate } from './schema.js';
import { forgetLocations, readSlots, refreshLocations } from '../blocks/locations.js';
import { readCheck } from '../blocks/verify.js';
import type { Segment } from '../images/segment.js';
import type { SlotNumber } from './types.js';
import { readerOn, writeTxOn, type Reader, type WriteTx } from './tx.js';
import { DESPITE_DAMAGE, damageRefusal, recordDamage, storeDamage } from './damage.js';

export interface StoreOptions {
  /** Create the store if absent (default true). */
  create?: boolean;
  readOnly?: boolean;
  /** Replace XXH64, e.g. with a colliding function in tests. */
  hash?: HashFn;
  /** Resolved map segments kept per store handle (16 KiB each at most; default 4096). */
  cacheSegments?: number;
  /** SQLite's page cache (default 16 MiB). */
  sqliteCacheBytes?: number;
  /**
   * 'full' (default): a flush survives power loss. 'unsafe': nothing is
   * synced, like qemu's cache=unsafe; for throwaway stores and logic tests.
   */
  durability?: 'full' | 'unsafe';
}

/**
 * An open store. It is itself a Reader: functions that only read the index
 * take it; functions that change it take the WriteTx that write() hands out.
 */
export interface Store extends Reader {
  readonly dir: string;
  /** The data files, slot by slot: where blocks live in their own place, and containers of packed ones. */
  readonly blocks: BlockBackend;
  /**
   * Reads `count` consecutive slots' blocks wherever each lives (locations.ts): what every reader of block data calls.
   * Each block is verified against its slot's recorded hash; a damaged one throws E_CORRUPT (verify.ts).
   */
  read(first: SlotNumber, count: number, into: Uint8Array, at: number): void;
  /** read() as stored, unverified: for callers that prove the bytes themselves (a byte compare before sharing, a digest, check). */
  readUnverified(first: SlotNumber, count: number, into: Uint8Array, at: number): void;
  readonly hash: HashFn;
  /** Which leases are live, as the kernel knows it. */
  readonly locks: LockFile;
  readonly readOnly: boolean;
  /** Resolved segments of frozen images, keyed by `${imageId}:${generation}:${seg}`. */
  readonly resolvedCache: Lru<string, Segment>;
  /**
   * Runs `fn` in an IMMEDIATE transaction: other writers wait, readers go on. `tx` is the only door that may change the index.
   * A store marked damaged (damage.ts) refuses it with E_CORRUPT; certain damage `fn` throws marks the store.
   */
  write<T>(fn: (tx: WriteTx) => T): T;
  /** write() on a store marked damaged too: check, repair, a lazy read's fetch (damage.ts). */
  [DESPITE_DAMAGE]<T>(fn: (tx: WriteTx) => T): T;
  /** Like write(), for state a crash voids anyway (leases): the commit is not synced, a checkpoint it triggers is. */
  writeVolatile<T>(fn: (tx: WriteTx) => T): T;
  close(): void;
}

export const DB_FILE = 'strata.db';

function sqliteError(e: unknown, file: string): never {
  const err = e as { code?: string; message?: string };
  if (err.code === 'SQLITE_NOTADB' || err.code === 'SQLITE_CORRUPT') {
    throw corrupt(`store database ${file} is corrupt: ${err.message}`, { file });
  }
  if (err.code === 'SQLITE_FULL') throw new StrataError('E_NO_SPACE', `no space left to write ${file}`, { file });
  if (err.code === 'SQLITE_BUSY') throw new StrataError('E_BUSY', `store database ${file} is locked by another process`, { file });
  throw e;
}

/**
 * Creates STORE/data; a path that cannot be a directory is the user's
 * mistake, named, not a crash. Returns the directories whose entries the new
 * store added to, deepest first: STORE itself, then each directory it had to
 * make and the one above the highest of those. Syncing them (syncNewStore)
 * makes the store's own name durable, not only the files inside it.
 */
function makeStoreDir(abs: string): string[] {
  try {
    const first = fs.mkdirSync(path.join(abs, 'data'), { recursive: true, mode: 0o700 });
    const dirs = [abs];
    // `first` is the highest directory made (undefined: STORE and data/ were there already).
    if (first !== undefined && first !== path.join(abs, 'data')) {
      for (let d = abs; d !== path.dirname(first); d = path.dirname(d)) if (d !== abs) dirs.push(d);
      dirs.push(path.dirname(first));
    }
    return dirs;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      let file = path.join(abs, 'data');
      while (!fs.existsSync(file) && path.dirname(file) !== file) file = path.dirname(file);
      throw badInput(`cannot make a store at ${abs}: ${file} is a file, not a directory (give --store a directory, or a path to create one)`, { store: abs });
    }
    throw new StrataError('E_IO', `cannot create the store directory ${abs}: ${code}`, { store: abs });
  }
}

/**
 * Syncs a directory the new store added an entry to. `theirs`: the directory
 * above the ones strata made, which belongs to the user; one that may be
 * searched but not listed (mode 0711 or 0733) cannot be opened to sync, and
 * refusing to make the store there would be worse than the file system's
 * own ordering for that one entry.
 */
function syncMadeIn(dir: string, theirs: boolean): void {
  try {
    syncDirectory(dir);
  } catch (e) {
    if (theirs && ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'EACCES') return;
    throw e;
  }
}

/** What a store directory may hold before its database exists (a first open killed part-way). */
const STORE_ENTRIES = new Set(['data', 'lock', 'run', DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`, 'lost+found']);

/**
 * A path without strata.db becomes a store only if it is new or an empty
 * directory: a mistyped --store that names a file, or a directory of other
 * things (a home directory, a mount point), must not have a store made in it.
 */
function refuseNonStore(abs: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') {
      let file = path.dirname(abs);
      while (!fs.existsSync(file) && path.dirname(file) !== file) file = path.dirname(file);
      throw badInput(`store path ${abs} is inside ${file}, which is a file, not a directory (give --store a directory, or a path to create one)`, { store: abs });
    }
    throw new StrataError('E_IO', `cannot use store path ${abs}: ${code}`, { store: abs });
  }
  if (!st.isDirectory()) throw badInput(`store path ${abs} is a file, not a strata store directory (give --store a directory, or a path to create one)`, { store: abs });
  const others = fs.readdirSync(abs).filter((n) => !STORE_ENTRIES.has(n));
  if (others.length > 0) {
    const shown = others.slice(0, 3).join(', ') + (others.length > 3 ? ', …' : '');
    throw badInput(`${abs} is not a strata store and holds other files (${shown}); give a new or empty directory`, { store: abs });
  }
}

export async function openStore(dir: string, opts: StoreOptions = {}): Promise<Store> {
  const create = opts.create ?? true;
  const readOnly = opts.readOnly ?? false;
  // Refcount and hash rows are typed arrays in the machine's byte order (slots.ts).
  if (os.endianness() !== 'LE') throw new StrataError('E_UNSUPPORTED', 'strata stores need a little-endian machine');
  const abs = path.resolve(dir);
  const dbPath = path.join(abs, DB_FILE);
  let madeIn: string[] = [];
  if (!fs.existsSync(dbPath)) {
    refuseNonStore(abs);
    if (!create || readOnly) throw new StrataError('E_NOT_FOUND', `no strata store at ${abs} (strata init creates one)`, { store: abs });
    madeIn = makeStoreDir(abs);
  }
  const hash = opts.hash ?? (await loadXxh64());
  const durability = opts.durability ?? 'full';

  let db: Database.Database;
  try {
    db = new Database(dbPath, { readonly: readOnly, fileMustExist: !create });
    db.pragma('busy_timeout = 60000');
    if (!readOnly) db.pragma('journal_mode = WAL');
    // FULL: a flush acknowledged to an NBD client must survive power loss, not only a crash.
    db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'OFF'}`);
    // The dedup index's keys are random, so a batch of new rows touches pages all over it; the
    // default 2 MiB cache made each of those a read. Refcounts and hashes are arrays (slots.ts),
    // so 16 MiB holds what a flush touches in a store of ~300k index rows per MiB.
    db.pragma(`cache_size = -${Math.max(1024, Math.floor((opts.sqliteCacheBytes ?? 16 * 1024 * 1024) / 1024))}`);
    if (!readOnly) migrate(db);
    db.prepare('SELECT count(*) FROM meta').get();
  } catch (e) {
    if (e instanceof StrataError) throw e;
    sqliteError(e, dbPath);
  }

  const blocks = envFaultyBlocks(openLocalBlocks(path.join(abs, 'data'), readOnly, durability === 'full'));
  const locks = openLockFile(abs, readOnly);
  // A new store's names (strata.db, lock, data/, STORE itself): a power cut must not lose what the
  // first command acknowledges. SQLite syncs the database's contents, never the directory holding it.
  if (durability === 'full') for (const d of madeIn) syncMadeIn(d, d === madeIn[madeIn.length - 1] && d !== abs);
  const resolvedCache = new Lru<string, Segment>(opts.cacheSegments ?? 4096);
  const reader = readerOn(db);
  const tx = writeTxOn(db);
  function transact<T>(fn: (tx: WriteTx) => T, refuseIfDamaged: boolean): T {
    if (readOnly) throw new StrataError('E_READONLY', `store ${abs} is open read-only`);
    try {
      return db
        .transaction(() => {
          if (refuseIfDamaged) {
            const damage = storeDamage(reader);
            if (damage) throw damageRefusal(abs, damage);
          }
          refreshLocations(reader);
          return fn(tx);
        })
        .immediate();
    } catch (e) {
      // Rolled back: locations cached inside may have been this transaction's own.
      forgetLocations(reader);
      recordDamage(reader, e);
      if (e instanceof StrataError) throw e;
      sqliteError(e, dbPath);
    }
  }
  const write = <T>(fn: (tx: WriteTx) => T): T => transact(fn, true);

  // STRATA_VERIFY_READS=0 turns verification off for bench/ to measure its cost; not a user setting.
  const check = process.env.STRATA_VERIFY_READS === '0' ? null : readCheck(reader, hash, opts.hash === undefined);

  return {
    ...reader,
    dir: abs,
    blocks,
    hash,
    locks,
    read(first, count, into, at) {
      try {
        readSlots(reader, blocks, first, count, into, at, check);
      } catch (e) {
        recordDamage(reader, e);
        throw e;
      }
    },
    readUnverified: (first, count, into, at) => readSlots(reader, blocks, first, count, into, at, null),
    readOnly,
    resolvedCache,
    write,
    [DESPITE_DAMAGE]: <T>(fn: (tx: WriteTx) => T): T => transact(fn, false),
    writeVolatile<T>(fn: (tx: WriteTx) => T): T {
      if (durability !== 'full') return transact(fn, false);
      // NORMAL, not OFF: in WAL mode NORMAL skips only the commit's sync. An auto-checkpoint this
      // commit triggers copies acknowledged frames into strata.db and the next writer restarts the
      // WAL over them, so that checkpoint must still sync the WAL before and strata.db after.
      db.pragma('synchronous = NORMAL');
      try {
        return transact(fn, false);
      } finally {
        db.pragma('synchronous = FULL');
      }
    },
    close() {
      blocks.close();
      locks.close();
      if (db.open) db.close();
    },
  };
}
