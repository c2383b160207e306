/**
 * Where blocks live, and reading them from there.
 *
 * A slot number is a block's identity: maps name it, refcounts count it, the
 * dedup index finds it. Its location is a separate fact in slot_locs
 * (slots.ts; its kinds in location.ts): by default the block sits in its own slot of the data files;
 * a compressed block is a fragment (offset, length, codec) packed with
 * others into a run of container slots, which it may cross from one slot
 * into the next (so packing wastes nothing but the tail of a batch). Compression and gc's repacking move blocks
 * by changing locations only, never a map, so every image sharing a block
 * sees the move at once.
 *
 * Each process caches location rows and drops them whenever meta.loc_seq
 * moves (every commit that changes a location raises it). It looks at
 * loc_seq at the start of each of its write transactions (where leases are
 * taken, so before it reads any image) and whenever it loads map segments.
 * A cached location can then be stale only for a block that another
 * process moved after this one last looked, and moves keep away from
 * blocks of images anyone holds open (relocate.ts): what a holder reads
 * stays where it found it.
 *
 * A store with no packed block takes the old path: one pread per run of
 * consecutive slots.
 */
import type Database from 'better-sqlite3';
import { StrataError, corrupt, isStrataError, storeCorrupt } from '../../errors.js';
import { decompressBlock } from './codecs.js';
import type { BlockBackend } from './datafiles.js';
import { prepared } from '../core/statements.js';
import { BLOCK_SIZE, type SlotNumber } from '../core/types.js';
import { sqlOf, type Reader } from '../core/tx.js';
import { LOCATION_WORDS, fragmentSpans, inOwnPlace, inRemotePack, locationAt, unreachable } from './location.js';

const CHUNK = 4096;
/** Location rows a process keeps: 512 × 32 KiB covers 8 GiB of blocks. */
const MAX_ROWS = 512;

/**
 * A read met a block that is still in a remote pack (a lazy clone's chain):
 * E_IO, never zeros. Async readers (the NBD server, export) fetch what
 * remoteSlotsIn() names before the synchronous read; this is what a read
 * that was not prepared, or lost a race, gets.
 */
export function remoteMiss(slots: readonly number[]): StrataError {
  return new StrataError('E_IO', `block${slots.length > 1 ? 's' : ''} in slot${slots.length > 1 ? 's' : ''} ${slots.slice(0, 4).join(', ')}${slots.length > 4 ? ', ...' : ''} not fetched from the remote yet`, { slots: [...slots], remoteMiss: true });
}
export const isRemoteMiss = (e: unknown): boolean => e instanceof StrataError && (e.data as { remoteMiss?: boolean } | undefined)?.remoteMiss === true;

interface LocCache {
  seq: number;
  /** Whether any block is packed: false means every slot is in its own place. */
  packed: boolean;
  rows: Map<number, Uint32Array | null>;
  /** The container(s) read last, kept for neighbouring fragments: first slot, and 1 or 2 slots. */
  containerSlot: number;
  containerSlots: number;
  container: Buffer;
}

/** How a read checks blocks against their recorded hashes (verify.ts makes one); null reads unverified. */
export interface ReadCheck {
  /** The recorded hashes of slots [first, first + count): a view of the cached row where the run stays in one. */
  expected(first: number, count: number): Float64Array;
  /** The index of the first of `count` blocks at into[at...] whose hash is not expected[i], or -1. */
  firstBad(into: Uint8Array, at: number, count: number, expected: Float64Array): number;
  /** Whether blocks may be read and hashed in one call into the addon (BlockBackend.readChecked). */
  readsNative: boolean;
  /**
   * `block`, read from `slot`, did not match the cached hash: throws
   * damagedBlock() unless it matches the hash committed now.
   */
  confirm(slot: number, block: Uint8Array): void;
}

const caches = new WeakMap<Database.Database, LocCache>();

function metaValue(db: Database.Database, key: string): number {
  // Not plucked: prepared() shares the statement with store.ts's metaNumber.
  const row = prepared(db, 'SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined;
  return row === undefined ? 0 : Number(row.value);
}

function cacheOf(db: Database.Database): LocCache {
  let c = caches.get(db);
  if (!c) {
    c = { seq: -1, packed: false, rows: new Map(), containerSlot: -1, containerSlots: 0, container: Buffer.alloc(2 * BLOCK_SIZE) };
    caches.set(db, c);
    refreshCache(db);
  }
  return c;
}

/** Drops cached locations if another commit moved any block since they were read. */
export function refreshLocations(on: Reader): void {
  refreshCache(sqlOf(on));
}

function refreshCache(db: Database.Database): void {
  const c = caches.get(db);
  if (!c) return;
  const seq = metaValue(db, 'loc_seq');
  if (seq === c.seq) return;
  c.rows.clear();
  c.containerSlot = -1;
  c.seq = seq;
  c.packed = metaValue(db, 'packed_blocks') > 0 || metaValue(db, 'container_slots') > 0 || metaValue(db, 'remote_blocks') > 0;
}

/** Called by the slot editor when this process changed locations (committed or not yet). */
export function locsChanged(on: Reader): void {
  const db = sqlOf(on);
  const c = caches.get(db);
  if (c) c.seq = -1; // re-read at the next look, after the commit or the rollback
}

/** Forgets everything cached: after a rolled-back transaction that may have loaded its own writes. */
export function forgetLocations(on: Reader): void {
  const db = sqlOf(on);
  const c = caches.get(db);
  if (c) {
    c.seq = -1;
    c.rows.clear();
    c.containerSlot = -1;
  }
}

function rowOf(db: Database.Database, c: LocCache, chunk: number): Uint32Array | null {
  let r = c.rows.get(chunk);
  if (r !== undefined) return r;
  const blob = prepared(db, 'SELECT locs FROM slot_locs WHERE chunk = ?').pluck().get(chunk) as Buffer | undefined;
  if (blob) {
    r = new Uint32Array(LOCATION_WORDS * CHUNK);
    if (blob.length !== r.byteLength) throw storeCorrupt(`slot_locs row ${chunk} is ${blob.length} bytes, expected ${r.byteLength}`, { chunk });
    Buffer.from(r.buffer).set(blob);
  } else r = null;
  if (c.rows.size >= MAX_ROWS) c.rows.clear();
  c.rows.set(chunk, r);
  return r;
}

/** Of `slots`, those whose block is still in a remote pack, by this process's cached locations. */
export function remoteSlotsOf(on: Reader, slots: Iterable<number>): number[] {
  const db = sqlOf(on);
  const c = cacheOf(db);
  if (c.seq === -1) refreshCache(db);
  const out: number[] = [];
  if (!c.packed) return out;
  for (const slot of slots) {
    const chunk = Math.floor(slot / CHUNK);
    if (inRemotePack(locationAt(rowOf(db, c, chunk), slot - chunk * CHUNK))) out.push(slot);
  }
  return out;
}

/**
 * Reads `count` slots in their own place from `first`; with `check`, each
 * block is verified against its recorded hash (verify.ts), in the same call
 * into the addon as the read where it can.
 */
function readInPlace(blocks: BlockBackend, first: number, count: number, into: Uint8Array, at: number, check: ReadCheck | null): void {
  if (!check) {
    blocks.read(first as SlotNumber, count, into, at);
    return;
  }
  const expected = check.expected(first, count);
  let bad = check.readsNative ? blocks.readChecked(first as SlotNumber, count, into, at, expected) : null;
  if (bad === null) {
    blocks.read(first as SlotNumber, count, into, at);
    bad = check.firstBad(into, at, count, expected);
  }
  // Confirmed one by one: a cached hash may be older than the slot's reuse (verify.ts).
  for (let i = bad; i >= 0 && i < count; i++) {
    const from = at + i * BLOCK_SIZE;
    if (i === bad || check.firstBad(into, from, 1, expected.subarray(i, i + 1)) === 0) check.confirm(first + i, into.subarray(from, from + BLOCK_SIZE));
  }
}

/** Verifies one decoded block (a fragment's) against its slot's hash. */
function checkOne(check: ReadCheck | null, slot: number, into: Uint8Array, at: number): void {
  if (check && check.firstBad(into, at, 1, check.expected(slot, 1)) === 0) check.confirm(slot, into.subarray(at, at + BLOCK_SIZE));
}

/**
 * Reads `count` consecutive slots' blocks into `into` at `at`, each from
 * where it lives: runs in their own place with one read, fragments through
 * their codec; `check` verifies each block (null: as stored, for callers
 * that prove the bytes themselves).
 */
export function readSlots(on: Reader, blocks: BlockBackend, first: SlotNumber, count: number, into: Uint8Array, at: number, check: ReadCheck | null): void {
  const db = sqlOf(on);
  const c = cacheOf(db);
  if (c.seq === -1) refreshCache(db);
  if (!c.packed) {
    readInPlace(blocks, first, count, into, at, check);
    return;
  }
  let i = 0;
  while (i < count) {
    const slot = first + i;
    const chunk = Math.floor(slot / CHUNK);
    const row = rowOf(db, c, chunk);
    const loc = locationAt(row, slot - chunk * CHUNK);
    switch (loc.kind) {
      case 'own': {
        // A run in place: as far as the chunk's row says so.
        let k = 1;
        while (i + k < count && Math.floor((slot + k) / CHUNK) === chunk && inOwnPlace(locationAt(row, slot + k - chunk * CHUNK))) k++;
        readInPlace(blocks, slot, k, into, at + i * BLOCK_SIZE, check);
        i += k;
        continue;
      }
      case 'container':
        throw corrupt(`slot ${slot} holds packed fragments but a map names it as a block`, { slot });
      case 'remote': {
        const missing = [slot];
        for (let k = i + 1; k < count && missing.length < 64; k++) {
          const s = first + k;
          const ch = Math.floor(s / CHUNK);
          if (inRemotePack(locationAt(rowOf(db, c, ch), s - ch * CHUNK))) missing.push(s);
        }
        throw remoteMiss(missing);
      }
      case 'packed': {
        const { container, offset, length, codec } = loc;
        // One call into the addon where it can: no container buffer, no second crossing.
        const direct = c.containerSlot === container ? -1 : blocks.readFragment(container, offset, length, codec, into, at + i * BLOCK_SIZE);
        if (direct === BLOCK_SIZE) {
          checkOne(check, slot, into, at + i * BLOCK_SIZE);
          i++;
          continue;
        }
        if (direct >= 0) throw storeCorrupt(`slot ${slot}'s fragment decodes to ${direct} bytes, not ${BLOCK_SIZE}`, { slot });
        const need = fragmentSpans(loc) ? 2 : 1;
        if (c.containerSlot !== container || c.containerSlots < need) {
          c.containerSlot = -1;
          blocks.read(container, need, c.container, 0);
          c.containerSlot = container;
          c.containerSlots = need;
        }
        try {
          decompressBlock(codec, c.container, offset, length, into, at + i * BLOCK_SIZE);
        } catch (e) {
          // codecs.ts decodes streams and buckets too; here it is this store's own fragment that is damaged.
          throw isStrataError(e, 'E_CORRUPT') ? storeCorrupt(e.message, { ...e.data, slot }, e) : e;
        }
        checkOne(check, slot, into, at + i * BLOCK_SIZE);
        i++;
        continue;
      }
      default:
        unreachable(loc);
    }
  }
}
