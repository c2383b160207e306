/**
 * The slot table: for every slot, how many map entries reference it and the
 * hash of what it holds. Kept as fixed arrays, one row per 4096 slots, the
 * way maps live in segments: a flush of 64 MiB of new data rewrites four
 * 16 KiB refcount rows and four 32 KiB hash rows instead of inserting 16384
 * rows into two B-trees (schema 3; see DESIGN notes in the README).
 *
 * - slot_refs: Uint32 per slot. 0xFFFFFFFF means "at least that many, the
 *   exact count is in wide_refs": an all-equal segment holds 4096
 *   references in 4 bytes, so 2^32 references to one slot is only 16 TiB of
 *   one repeated block.
 * - slot_hashes: Float64 per slot, the 53-bit block hash of a slot whose
 *   refcount is above zero; meaningless for a free slot.
 * - hash_index (hash, slot): the dedup index, a hint by construction. A
 *   slot is shared only after its bytes compare equal, its refcount is above
 *   zero and its slot_hashes entry agrees, all inside the write transaction
 *   that takes the new reference. So a missing row costs only space and a
 *   stale one only a failed look; rows are added in sorted batches (possibly
 *   long after the slot was written) and stale rows are pruned by gc.
 *
 * - slot_locs: where a slot's block lives, a Location (location.ts, the one
 *   place that knows its two Uint32 words per slot): in its own place (the
 *   default: a chunk with no other location has no row), packed as a
 *   fragment, a container of other slots' fragments (its refcount counts
 *   them), or remote. A slot's number is the block's identity, named by
 *   maps; its location may change (compress, repack, evict, fetch) without
 *   any map changing.
 *
 * Arrays are stored in the machine's byte order; strata runs on
 * little-endian machines only (x86-64, arm64), which openStore checks.
 */
import type Database from 'better-sqlite3';
import { storeCorrupt } from '../../errors.js';
import { prepared } from '../core/statements.js';
import { metaNumber, setMeta } from '../core/meta.js';
import { locsChanged } from '../blocks/locations.js';
import { LOCATION_WORDS, allOwn, locationAt, putLocation, tallyLocation, type Location, type LocationTally } from '../blocks/location.js';
import { sqlOf, type Reader, type WriteTx } from '../core/tx.js';

const CHUNK_SLOTS = 4096;
/** In slot_refs: the count is in wide_refs. */
const WIDE = 0xffffffff;

const chunkOf = (slot: number) => Math.floor(slot / CHUNK_SLOTS);

function toBlob(a: Uint32Array | Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** One row of an array table as a fresh, zero-filled array when the row is absent. */
function loadRow<T extends Uint32Array | Float64Array>(db: Database.Database, table: 'slot_refs' | 'slot_hashes' | 'slot_locs', chunk: number, make: () => T): T {
  const out = make();
  const column = table === 'slot_refs' ? 'counts' : table === 'slot_hashes' ? 'hashes' : 'locs';
  const blob = prepared(db, `SELECT ${column} FROM ${table} WHERE chunk = ?`).pluck().get(chunk) as Buffer | undefined;
  if (blob) {
    if (blob.length !== out.byteLength) throw storeCorrupt(`${table} row ${chunk} is ${blob.length} bytes, expected ${out.byteLength}`, { chunk });
    toBlob(out).set(blob);
  }
  return out;
}

const loadRefsRow = (db: Database.Database, chunk: number) => loadRow(db, 'slot_refs', chunk, () => new Uint32Array(CHUNK_SLOTS));
const hashesRow = (db: Database.Database, chunk: number) => loadRow(db, 'slot_hashes', chunk, () => new Float64Array(CHUNK_SLOTS));
const locsRow = (db: Database.Database, chunk: number) => loadRow(db, 'slot_locs', chunk, () => new Uint32Array(2 * CHUNK_SLOTS));

/** A chunk's recorded block hashes (53-bit XXH64; NaN for containers; 0 where never written). */
export const loadHashesRow = (on: Reader, chunk: number) => hashesRow(sqlOf(on), chunk);

/** A chunk's locations, read with locationAt (location.ts). Absent row: every slot in its own place. */
export const loadLocsRow = (on: Reader, chunk: number) => loadRow(sqlOf(on), 'slot_locs', chunk, () => new Uint32Array(LOCATION_WORDS * CHUNK_SLOTS));

function saveLocsRow(db: Database.Database, chunk: number, a: Uint32Array): void {
  if (allOwn(a)) prepared(db, 'DELETE FROM slot_locs WHERE chunk = ?').run(chunk);
  else prepared(db, 'INSERT INTO slot_locs(chunk, locs) VALUES (?, ?) ON CONFLICT(chunk) DO UPDATE SET locs = excluded.locs').run(chunk, toBlob(a));
}

export const LOC_CHUNK_SLOTS = CHUNK_SLOTS;

function saveRefsRow(db: Database.Database, chunk: number, a: Uint32Array): void {
  // A chunk with no live slot has no row: an empty store stays empty, and gc's scan stays short.
  if (a.every((x) => x === 0)) prepared(db, 'DELETE FROM slot_refs WHERE chunk = ?').run(chunk);
  else prepared(db, 'INSERT INTO slot_refs(chunk, counts) VALUES (?, ?) ON CONFLICT(chunk) DO UPDATE SET counts = excluded.counts').run(chunk, toBlob(a));
}

/**
 * Hash rows kept per database handle for verifying reads (verify.ts): 256 ×
 * 32 KiB covers 4 GiB of blocks. A row this process saves is dropped here;
 * one another process changed is caught by verify.ts, which looks again at
 * the committed row before it calls a block damaged.
 */
const hashRowCache = new WeakMap<Database.Database, Map<number, Float64Array>>();
const MAX_CACHED_HASH_ROWS = 256;

/** A chunk's hash row, from the cache unless `fresh` (then read again and cached). */
export function cachedHashesRow(on: Reader, chunk: number, fresh = false): Float64Array {
  const db = sqlOf(on);
  let rows = hashRowCache.get(db);
  if (!rows) hashRowCache.set(db, (rows = new Map()));
  let r = fresh ? undefined : rows.get(chunk);
  if (!r) {
    if (rows.size >= MAX_CACHED_HASH_ROWS) rows.clear();
    rows.set(chunk, (r = hashesRow(db, chunk)));
  }
  return r;
}

function saveHashesRow(db: Database.Database, chunk: number, a: Float64Array): void {
  hashRowCache.get(db)?.delete(chunk);
  prepared(db, 'INSERT INTO slot_hashes(chunk, hashes) VALUES (?, ?) ON CONFLICT(chunk) DO UPDATE SET hashes = excluded.hashes').run(chunk, toBlob(a));
}

function wideCount(db: Database.Database, slot: number): number {
  const n = prepared(db, 'SELECT refcount FROM wide_refs WHERE slot = ?').pluck().get(slot) as number | undefined;
  if (n === undefined) throw storeCorrupt(`slot ${slot} is marked as widely shared but has no wide_refs row`, { slot });
  return n;
}

/**
 * Reads refcounts and hashes, a row at a time, for the life of one
 * transaction (or one consistent read): rows are cached, never re-read.
 */
export interface SlotReader {
  refcount(slot: number): number;
  hash(slot: number): number;
  /** Where the slot's block lives. */
  loc(slot: number): Location;
}

export function slotReader(on: Reader): SlotReader {
  const db = sqlOf(on);
  const refs = new Map<number, Uint32Array>();
  const hashes = new Map<number, Float64Array>();
  const locs = new Map<number, Uint32Array>();
  // Bounded: gc's walk of the whole index must not hold the whole slot table.
  const keep = <T>(m: Map<number, T>, c: number, v: T) => {
    if (m.size >= 1024) m.clear();
    m.set(c, v);
    return v;
  };
  return {
    refcount(slot) {
      const c = chunkOf(slot);
      const a = refs.get(c) ?? keep(refs, c, loadRefsRow(db, c));
      const v = a[slot - c * CHUNK_SLOTS];
      return v === WIDE ? wideCount(db, slot) : v;
    },
    hash(slot) {
      const c = chunkOf(slot);
      const a = hashes.get(c) ?? keep(hashes, c, hashesRow(db, c));
      return a[slot - c * CHUNK_SLOTS];
    },
    loc(slot) {
      const c = chunkOf(slot);
      const a = locs.get(c) ?? keep(locs, c, loadLocsRow(on, c));
      return locationAt(a, slot - c * CHUNK_SLOTS);
    },
  };
}

export function refcountOf(on: Reader, slot: number): number {
  return slotReader(on).refcount(slot);
}

/**
 * Changes slots' refcounts and hashes, row by row, in the write transaction
 * it was made in. Reports each slot whose count went from above zero to zero
 * (`freed`) and from zero to above zero (`born`); keeps meta.used_slots.
 */
export interface SlotEdit {
  /** Slot's count now (0 if free). */
  get(slot: number): number;
  set(slot: number, count: number, hash?: number): void;
  loc(slot: number): Location;
  /** Moves a slot's block (see slot_locs above); keeps the packed counts in meta. */
  setLoc(slot: number, loc: Location): void;
  /** Writes every changed row; returns the change in live slots. */
  commit(): number;
}

/** meta counters of packed data, kept by setLoc and checked by check. */
export interface PackedCounts {
  /** Live slots whose block is a fragment in a container. */
  packedBlocks: number;
  /** Their fragments' bytes. */
  packedBytes: number;
  /** Slots that hold fragments. */
  containers: number;
}

export function packedCounts(on: Reader): PackedCounts {
  return { packedBlocks: metaNumber(on, 'packed_blocks'), packedBytes: metaNumber(on, 'packed_bytes'), containers: metaNumber(on, 'container_slots') };
}

export function slotEditor(tx: WriteTx): SlotEdit {
  const db = sqlOf(tx);
  const refs = new Map<number, Uint32Array>();
  const hashes = new Map<number, Float64Array>();
  const dirtyRefs = new Set<number>();
  const dirtyHashes = new Set<number>();
  const locs = new Map<number, Uint32Array>();
  const dirtyLocs = new Set<number>();
  const packed: LocationTally = { packedBlocks: 0, packedBytes: 0, containers: 0, remote: 0 };
  let liveDelta = 0;
  const locsOf = (c: number) => {
    let a = locs.get(c);
    if (!a) locs.set(c, (a = locsRow(db, c)));
    return a;
  };
  const refsOf = (c: number) => {
    let a = refs.get(c);
    if (!a) refs.set(c, (a = loadRefsRow(db, c)));
    return a;
  };
  const get = (slot: number) => {
    const c = chunkOf(slot);
    const v = refsOf(c)[slot - c * CHUNK_SLOTS];
    return v === WIDE ? wideCount(db, slot) : v;
  };
  return {
    get,
    loc: (slot) => locationAt(locsOf(chunkOf(slot)), slot % CHUNK_SLOTS),
    setLoc(slot, loc) {
      const c = chunkOf(slot);
      const old = putLocation(locsOf(c), slot - c * CHUNK_SLOTS, loc);
      if (old === null) return;
      tallyLocation(packed, old, -1);
      tallyLocation(packed, loc, 1);
      dirtyLocs.add(c);
    },
    set(slot, count, hash) {
      if (!Number.isSafeInteger(count) || count < 0) throw storeCorrupt(`refcount of slot ${slot} would be ${count}`, { slot });
      const c = chunkOf(slot);
      const a = refsOf(c);
      const i = slot - c * CHUNK_SLOTS;
      const was = a[i];
      if (was === 0 && count > 0) liveDelta++;
      else if (was !== 0 && count === 0) liveDelta--;
      if (count >= WIDE) {
        a[i] = WIDE;
        prepared(db, 'INSERT INTO wide_refs(slot, refcount) VALUES (?, ?) ON CONFLICT(slot) DO UPDATE SET refcount = excluded.refcount').run(slot, count);
      } else {
        if (was === WIDE) prepared(db, 'DELETE FROM wide_refs WHERE slot = ?').run(slot);
        a[i] = count;
      }
      dirtyRefs.add(c);
      if (hash !== undefined) {
        let h = hashes.get(c);
        if (!h) hashes.set(c, (h = hashesRow(db, c)));
        h[i] = hash;
        dirtyHashes.add(c);
      }
    },
    commit() {
      for (const c of dirtyRefs) saveRefsRow(db, c, refs.get(c)!);
      for (const c of dirtyHashes) saveHashesRow(db, c, hashes.get(c)!);
      for (const c of dirtyLocs) saveLocsRow(db, c, locs.get(c)!);
      if (dirtyLocs.size > 0) {
        // Processes cache locations (locations.ts) and drop them when this moves.
        setMeta(tx, 'loc_seq', metaNumber(tx, 'loc_seq') + 1);
        setMeta(tx, 'packed_blocks', metaNumber(tx, 'packed_blocks') + packed.packedBlocks);
        setMeta(tx, 'packed_bytes', metaNumber(tx, 'packed_bytes') + packed.packedBytes);
        setMeta(tx, 'container_slots', metaNumber(tx, 'container_slots') + packed.containers);
        if (packed.remote !== 0) setMeta(tx, 'remote_blocks', metaNumber(tx, 'remote_blocks') + packed.remote);
        packed.packedBlocks = packed.packedBytes = packed.containers = packed.remote = 0;
        locsChanged(tx);
      }
      dirtyRefs.clear();
      dirtyHashes.clear();
      dirtyLocs.clear();
      if (liveDelta !== 0) setMeta(tx, 'used_slots', metaNumber(tx, 'used_slots') + liveDelta);
      const d = liveDelta;
      liveDelta = 0;
      return d;
    },
  };
}

/** Slots with a refcount above zero, counted as they change (checked by check). */
export function usedSlotCount(on: Reader): number {
  return metaNumber(on, 'used_slots');
}

/**
 * Every live slot in ascending order: fn(slot, refcount, hash). Reads whole
 * rows; for check, du and gc, which look at every slot anyway. Without
 * `hashes` (du), the hash rows are not read and `hash` is NaN.
 */
export function forEachLiveSlot(
  on: Reader,
  fn: (slot: number, refcount: number, hash: number, loc: Location) => void,
  opts: { hashes?: boolean } = {},
): void {
  const db = sqlOf(on);
  const withHashes = opts.hashes ?? true;
  const locChunks = new Set(db.prepare('SELECT chunk FROM slot_locs').pluck().all() as number[]);
  // all(), not iterate(): callers may run statements (wide_refs) while walking.
  const rows = db.prepare('SELECT chunk FROM slot_refs ORDER BY chunk').pluck().all() as number[];
  for (const c of rows) {
    const refs = loadRefsRow(db, c);
    let hashes: Float64Array | null = null;
    const locs = locChunks.has(c) ? locsRow(db, c) : null;
    for (let i = 0; i < CHUNK_SLOTS; i++) {
      const v = refs[i];
      if (v === 0) continue;
      if (withHashes) hashes ??= hashesRow(db, c);
      const slot = c * CHUNK_SLOTS + i;
      fn(slot, v === WIDE ? wideCount(db, slot) : v, hashes ? hashes[i] : NaN, locationAt(locs, i));
    }
  }
}

/** The highest slot with a refcount above zero, or -1. */
export function highestLiveSlot(on: Reader): number {
  const db = sqlOf(on);
  const chunks = db.prepare('SELECT chunk FROM slot_refs ORDER BY chunk DESC').pluck().all() as number[];
  for (const c of chunks) {
    const refs = loadRefsRow(db, c);
    for (let i = CHUNK_SLOTS - 1; i >= 0; i--) if (refs[i] !== 0) return c * CHUNK_SLOTS + i;
  }
  return -1;
}

// ---- the dedup index (a hint) ---------------------------------------------

/** Rows per statement when adding to the index: one SQLite call per 200 rows, not per row. */
const INDEX_ROWS = 200;

/**
 * Adds (hash, slot) pairs to the dedup index, sorted so the B-tree takes
 * them as runs rather than scattered inserts. `pairs` is hash, slot, hash,
 * slot, ...; it is sorted in place.
 */
export function indexSlots(tx: WriteTx, pairs: number[]): void {
  const db = sqlOf(tx);
  const n = pairs.length / 2;
  if (n === 0) return;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => pairs[2 * a] - pairs[2 * b] || pairs[2 * a + 1] - pairs[2 * b + 1]);
  const many = prepared(db, `INSERT OR IGNORE INTO hash_index(hash, slot) VALUES ${Array(INDEX_ROWS).fill('(?, ?)').join(',')}`);
  const one = prepared(db, 'INSERT OR IGNORE INTO hash_index(hash, slot) VALUES (?, ?)');
  const args: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = order[k];
    args.push(pairs[2 * i], pairs[2 * i + 1]);
    if (args.length === 2 * INDEX_ROWS) many.run(...args.splice(0));
  }
  for (let i = 0; i < args.length; i += 2) one.run(args[i], args[i + 1]);
}

/** Hash lookups per statement. */
const LOOKUP_BATCH = 500;

/** Index rows for `hashes`: slots that may hold each hash, up to `max` each. Unverified. */
export function indexLookup(on: Reader, hashes: readonly number[], max: number): Map<number, number[]> {
  const db = sqlOf(on);
  const out = new Map<number, number[]>();
  const wanted = [...new Set(hashes)];
  const full = prepared(db, `SELECT hash, slot FROM hash_index WHERE hash IN (${Array(LOOKUP_BATCH).fill('?').join(',')})`).raw();
  for (let i = 0; i < wanted.length; i += LOOKUP_BATCH) {
    const part = wanted.slice(i, i + LOOKUP_BATCH);
    // The last, shorter batch varies in size: prepared once, not cached.
    const stmt = part.length === LOOKUP_BATCH ? full : db.prepare(`SELECT hash, slot FROM hash_index WHERE hash IN (${part.map(() => '?').join(',')})`).raw();
    for (const [h, slot] of stmt.all(...part) as [number, number][]) {
      const list = out.get(h);
      if (!list) out.set(h, [slot]);
      else if (list.length < max) list.push(slot);
    }
  }
  return out;
}

/**
 * Drops index rows that no longer name a live slot holding their hash, and
 * rows at or past `end`. Returns how many went. Runs in gc.
 */
export function pruneIndex(tx: WriteTx, end: number): number {
  const db = sqlOf(tx);
  let pruned = db.prepare('DELETE FROM hash_index WHERE slot >= ?').run(end).changes;
  const read = slotReader(tx);
  const page = db.prepare('SELECT hash, slot FROM hash_index WHERE (hash, slot) > (?, ?) ORDER BY hash, slot LIMIT 8192').raw();
  const del = db.prepare('DELETE FROM hash_index WHERE hash = ? AND slot = ?');
  // In pages, so an index of millions of rows is never held in memory at once.
  let after: [number, number] = [-Infinity, -Infinity];
  for (;;) {
    const rows = page.all(...after) as [number, number][];
    if (rows.length === 0) break;
    for (const [hash, slot] of rows) if (read.refcount(slot) === 0 || read.hash(slot) !== hash) pruned += del.run(hash, slot).changes;
    after = rows[rows.length - 1];
  }
  return pruned;
}
