/**
 * The slot table as migrations 3 and 6 wrote and read it, frozen. A
 * migration must turn an old store into the same rows whatever the live
 * slot table (slots/slots.ts) later becomes, so it never calls that code:
 * this file holds its own copy of the encoding as it was then, and is never
 * changed with slots.ts.
 *
 * - slot_refs (chunk, counts): Uint32 per slot, 4096 slots a row, machine
 *   order; 0xFFFFFFFF means the exact count is in wide_refs. A row of no
 *   live slot is not written.
 * - slot_hashes (chunk, hashes): Float64 per slot, the 53-bit block hash.
 * - hash_index (hash, slot): every live slot under its hash.
 * - meta.used_slots: how many slots have a refcount above zero.
 * - slot_locs (chunk, locs) word 0 (migration 6 reads it): 0 own place,
 *   0xFFFFFFFF container, 0xFFFFFFFE remote, else container + 1 (packed).
 */
import type Database from 'better-sqlite3';
import { corrupt } from '../../errors.js';

const CHUNK_SLOTS = 4096;
const WIDE = 0xffffffff;
const CONTAINER = 0xffffffff;
const REMOTE = 0xfffffffe;

const blobOf = (a: Uint32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes the slot table of schema 3 from the rows of schema 2's blocks
 * table, (slot, hash, refcount) with refcount above zero, in slot order.
 */
export function writeSlotTableV3(db: Database.Database, rows: Iterable<readonly [slot: number, hash: number, refcount: number]>): void {
  const putRefs = db.prepare('INSERT INTO slot_refs(chunk, counts) VALUES (?, ?)');
  const putHashes = db.prepare('INSERT INTO slot_hashes(chunk, hashes) VALUES (?, ?)');
  const putWide = db.prepare('INSERT INTO wide_refs(slot, refcount) VALUES (?, ?)');
  const putIndex = db.prepare('INSERT OR IGNORE INTO hash_index(hash, slot) VALUES (?, ?)');
  let chunk = -1;
  let counts = new Uint32Array(CHUNK_SLOTS);
  let hashes = new Float64Array(CHUNK_SLOTS);
  let live = 0;
  const flush = () => {
    if (chunk < 0) return;
    putRefs.run(chunk, blobOf(counts));
    putHashes.run(chunk, blobOf(hashes));
    counts = new Uint32Array(CHUNK_SLOTS);
    hashes = new Float64Array(CHUNK_SLOTS);
  };
  const pairs: [number, number][] = [];
  for (const [slot, hash, refcount] of rows) {
    const c = Math.floor(slot / CHUNK_SLOTS);
    if (c !== chunk) {
      flush();
      chunk = c;
    }
    const i = slot - c * CHUNK_SLOTS;
    if (refcount >= WIDE) {
      counts[i] = WIDE;
      putWide.run(slot, refcount);
    } else counts[i] = refcount;
    hashes[i] = hash;
    live++;
    pairs.push([hash, slot]);
  }
  flush();
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [hash, slot] of pairs) putIndex.run(hash, slot);
  db.prepare("UPDATE meta SET value = value + ? WHERE key = 'used_slots'").run(live);
}

/** The live slots whose block is packed into a container (schema 4-5's slot_locs), ascending. */
export function packedSlotsV6(db: Database.Database): number[] {
  const out: number[] = [];
  const locsOf = db.prepare('SELECT locs FROM slot_locs WHERE chunk = ?').pluck();
  for (const [chunk, countsBlob] of db.prepare('SELECT chunk, counts FROM slot_refs ORDER BY chunk').raw().all() as [number, Buffer][]) {
    const locsBlob = locsOf.get(chunk) as Buffer | undefined;
    if (!locsBlob) continue;
    if (countsBlob.length !== 4 * CHUNK_SLOTS || locsBlob.length !== 8 * CHUNK_SLOTS) throw corrupt(`slot table row ${chunk} has the wrong size`, { chunk });
    const counts = new Uint32Array(CHUNK_SLOTS);
    const locs = new Uint32Array(2 * CHUNK_SLOTS);
    blobOf(counts).set(countsBlob);
    blobOf(locs).set(locsBlob);
    for (let i = 0; i < CHUNK_SLOTS; i++) {
      const w0 = locs[2 * i];
      if (counts[i] !== 0 && w0 !== 0 && w0 !== CONTAINER && w0 !== REMOTE) out.push(chunk * CHUNK_SLOTS + i);
    }
  }
  return out;
}
