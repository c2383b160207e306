/**
 * Consistency check of a whole store, in the manner of `qemu-img check`.
 *
 * What is checked:
 * - catalog: every parent exists, no chain loops;
 * - maps: no entry points past next_slot or at a free slot; no map rows
 *   belong to a missing image;
 * - refcounts: each slot's refcount equals the map references to it, and
 *   the count of slots in use agrees;
 * - free list: every slot below next_slot is exactly one of in use
 *   (refcount above zero) or free (free_slots row); nothing beyond
 *   next_slot is either;
 * - locations: a compressed block's fragment lies inside a container slot;
 *   each container's refcount equals the live fragments in it; the packed
 *   counts in meta agree;
 * - data: every slot in use is read (decompressed where packed) and its
 *   hash compared with the hash recorded for it. The dedup index is a hint and is not checked: a missing
 *   row costs space, a stale one a failed compare (slots.ts).
 *
 * Faults are of two classes, which decide the exit status like qemu-img:
 * - leak: space is lost, nothing is at risk (an unreferenced slot on no
 *   list, a refcount above the references, map rows of a missing image);
 * - corruption: data may be wrong or could be overwritten.
 *
 * --repair fixes what it can without dropping data: leaks go to the free
 * list, refcounts are set to the counted references, and a referenced slot
 * that is on the free list (or counted 0) is taken back and hashed from
 * its current content. Content that fails its hash is reported, never
 * repaired: no copy of the right bytes exists.
 *
 * A store marked damaged (core/damage.ts) is reported as such, and is
 * corrupt (exit 2) while marked. --repair clears the mark once no structural
 * fault is left: blocks whose content fails its hash may remain (listed with every
 * image and offset that reads them), since every read of them is refused
 * and no write can spread them, and the user can then rewrite or remove
 * what reads them, which the mark would forbid.
 */
import { segDecode } from '../images/segment.js';
import { damagedReads, type DamagedRead } from './damaged-reads.js';
import { faultPoint } from '../core/faults.js';
import { freeSlots } from '../slots/freelist.js';
import { STORE_LEASE, leaseTx, releaseLease } from '../leases/leases.js';
import { metaNumber, setMeta } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { DESPITE_DAMAGE, clearDamage, storeDamage, type StoreDamage } from '../core/damage.js';
import type { WriteTx } from '../core/tx.js';
import { dropRemoteLoc, remotePlacesOf } from '../blocks/remote-locs.js';
import { CONTAINER, REMOTE, forEachLiveSlot, indexSlots, packedCounts, slotEditor, slotReader, usedSlotCount } from '../slots/slots.js';
import { fragmentLength, fragmentOffset, fragmentSpans, isPackedLoc } from '../blocks/locations.js';
import { BLOCK_SIZE, SEGMENT_ENTRIES, type OnProgress, type SlotNumber } from '../core/types.js';

export type FaultClass = 'corruption' | 'leak';

export interface Fault {
  class: FaultClass;
  /** Short stable name of the kind of fault. */
  kind:
    | 'bad-hash'
    | 'unreadable-slot'
    | 'refcount-high'
    | 'refcount-low'
    | 'used-slots'
    | 'map-points-at-free-slot'
    | 'map-points-past-end'
    | 'lost-slot'
    | 'list-past-end'
    | 'orphan-map'
    | 'missing-parent'
    | 'chain-loop'
    | 'own-blocks'
    | 'bad-location'
    | 'packed-counts';
  message: string;
  repaired: boolean;
  /** The slot a data fault is about. */
  slot?: number;
}

export interface CheckReport {
  images: number;
  slots: number;
  /** Slots whose content was read and hashed. */
  slotsVerified: number;
  verifiedBytes: number;
  faults: Fault[];
  corruptions: number;
  leaks: number;
  repaired: number;
  /** 'clean' | 'leaks' | 'corrupt', from the faults left unrepaired. */
  status: 'clean' | 'leaks' | 'corrupt';
  /** As qemu-img check: 0 clean, 2 corruption, 3 leaks only. */
  exitStatus: 0 | 2 | 3;
  /** Each image and byte range that reads a slot whose content failed (damaged-reads.ts), through inheritance too. */
  damagedReads: DamagedRead[];
  /** Further such reads, past those listed. */
  damagedReadsNotListed: number;
  /** The store's damage mark as this check found it (core/damage.ts); `cleared` by this --repair. Null: not marked. */
  damage: (StoreDamage & { cleared: boolean }) | null;
  elapsedMs: number;
}

/** Faults named per slot past this many are summarised, so a wrecked store still yields a readable report. */
const MAX_FAULTS_PER_KIND = 1000;
/** Slots read per pread while verifying: 1 MiB. */
const VERIFY_RUN = 256;

interface ImageRow {
  id: number;
  name: string;
  parent_id: number | null;
  own_blocks: number;
}

export interface CheckOptions {
  repair?: boolean;
  /**
   * Bytes of slots verified, of all in use. A throw from it stops the check:
   * a repair rolls back whole, a plain check has changed nothing.
   */
  onProgress?: OnProgress;
}

export function checkStore(store: Store, opts: CheckOptions = {}): CheckReport {
  const t0 = performance.now();
  const run = () => runCheck(store, !!opts.repair, opts.onProgress);
  // Repair holds the write lock throughout, so nothing changes between finding a fault and fixing it.
  const repairTx = (tx: WriteTx) => {
    const r = withDamageMark(store, run(), tx);
    faultPoint('repair.before-commit');
    return r;
  };
  let report: CheckReport;
  if (opts.repair) {
    report = store[DESPITE_DAMAGE](repairTx);
    faultPoint('repair.after-commit');
  } else {
    // A plain check reads one snapshot (WAL) and lets writers go on. Its pin keeps every slot
    // that snapshot names from reuse until it is done, so the bytes it reads are the ones the
    // snapshot means; data faults are still confirmed under the write lock before they count.
    const pin = store.readOnly ? null : leaseTx(store, (take) => take(store, STORE_LEASE, 'the store', 'read', { pin: true }));
    try {
      report = store.db.transaction(run).deferred();
    } finally {
      if (pin) releaseLease(store, pin);
    }
    if (!store.readOnly) report = confirmDataFaults(store, report);
    report = withDamageMark(store, report);
  }
  report = withDamagedReads(store, report);
  report.elapsedMs = Math.round(performance.now() - t0);
  return report;
}

/** Names who reads each slot that failed verification: every image and byte range, inherited reads included. */
function withDamagedReads(store: Store, report: CheckReport): CheckReport {
  const damaged = new Set(report.faults.filter((f) => f.slot !== undefined && !f.repaired && (f.kind === 'bad-hash' || f.kind === 'unreadable-slot')).map((f) => f.slot!));
  if (damaged.size === 0) return report;
  const { reads, more } = store.db.transaction(() => damagedReads(store.db, damaged, MAX_FAULTS_PER_KIND)).deferred();
  return { ...report, damagedReads: reads, damagedReadsNotListed: more };
}

/**
 * Reads each slot that failed verification again inside a write transaction,
 * where no writer can change it: a fault that does not show again (the slot
 * was freed, or reads right now) is dropped rather than reported.
 */
function confirmDataFaults(store: Store, report: CheckReport): CheckReport {
  const suspects = report.faults.filter((f) => f.slot !== undefined && (f.kind === 'bad-hash' || f.kind === 'unreadable-slot'));
  if (suspects.length === 0) return report;
  const gone = store[DESPITE_DAMAGE](() => {
    const now = slotReader(store.db);
    const buf = Buffer.allocUnsafe(BLOCK_SIZE);
    return new Set(
      suspects.filter((f) => {
        if (now.refcount(f.slot!) === 0) return true;
        const hash = now.hash(f.slot!);
        try {
          store.readUnverified(f.slot! as SlotNumber, 1, buf, 0);
        } catch {
          return false;
        }
        return store.hash(buf) === hash;
      }),
    );
  });
  if (gone.size === 0) return report;
  return summarize(report.faults.filter((f) => !gone.has(f)), report.images, report.slots, report.slotsVerified);
}

/** Damage the store cannot be repaired of and that no write can spread: a mark over only these is cleared by --repair. */
const DATA_ONLY: ReadonlySet<Fault['kind']> = new Set(['bad-hash', 'unreadable-slot']);

/**
 * The report with the store's damage mark: a store still marked is corrupt.
 * With `repairing` (inside the repair's transaction) the mark is cleared, in
 * that transaction, when no structural fault is left open.
 */
function withDamageMark(store: Store, report: CheckReport, repairing?: WriteTx): CheckReport {
  const mark = storeDamage(store);
  if (!mark) return report;
  const cleared = repairing !== undefined && !report.faults.some((f) => f.class === 'corruption' && !f.repaired && !DATA_ONLY.has(f.kind));
  if (cleared) clearDamage(repairing);
  return { ...report, damage: { ...mark, cleared }, ...(cleared ? {} : { status: 'corrupt' as const, exitStatus: 2 as const }) };
}

function runCheck(store: Store, repair: boolean, onProgress?: OnProgress): CheckReport {
  const db = store.db;
  const faults: Fault[] = [];
  const perKind = new Map<string, number>();
  const fault = (cls: FaultClass, kind: Fault['kind'], message: string, repaired = false, slot?: number) => {
    const n = (perKind.get(kind) ?? 0) + 1;
    perKind.set(kind, n);
    if (n <= MAX_FAULTS_PER_KIND) faults.push(slot === undefined ? { class: cls, kind, message, repaired } : { class: cls, kind, message, repaired, slot });
    else if (n === MAX_FAULTS_PER_KIND + 1) faults.push({ class: cls, kind, message: `further faults of kind ${kind} not listed`, repaired });
  };

  // ---- catalog -------------------------------------------------------------
  const images = db.prepare('SELECT id, name, parent_id, own_blocks FROM images').all() as ImageRow[];
  const byId = new Map(images.map((i) => [i.id, i]));
  for (const img of images) {
    if (img.parent_id !== null && !byId.has(img.parent_id)) {
      fault('corruption', 'missing-parent', `image ${img.name}: parent id ${img.parent_id} is missing`);
      continue;
    }
    const seen = new Set<number>([img.id]);
    for (let p = img.parent_id; p !== null; ) {
      if (seen.has(p)) {
        fault('corruption', 'chain-loop', `image ${img.name}: parent chain loops (through ${byId.get(p)!.name})`);
        break;
      }
      seen.add(p);
      const row = byId.get(p);
      if (!row) break; // reported for the image that names it
      p = row.parent_id;
    }
  }

  // ---- maps: count references per slot --------------------------------------
  const next = metaNumber(db, 'next_slot');
  // Float64, not Uint32: one all-equal segment is 4096 references, so 2^32 of them to one slot is
  // only 16 TiB of a repeated block. A wrapped count would let repair free a slot in use.
  // Doubles count exactly up to 2^53.
  const refs = new Float64Array(next);
  const free = new Uint8Array(next);
  for (const slot of db.prepare('SELECT slot FROM free_slots').pluck().all() as number[]) {
    if (slot >= 0 && slot < next) free[slot] = 1;
    else {
      if (repair) db.prepare('DELETE FROM free_slots WHERE slot = ?').run(slot);
      fault('corruption', 'list-past-end', `slot ${slot}: on the free list but at or past next_slot ${next}`, repair);
    }
  }
  /** Referenced slots on the free list, named once per image. */
  const freeHits = new Set<string>();
  const orphanImages = new Set<number>();
  const ownCounted = new Map<number, number>();
  const segRows = db.prepare('SELECT image_id, seg, entries FROM segments').raw().iterate() as IterableIterator<[number, number, Buffer]>;
  for (const [imageId, seg, blob] of segRows) {
    const img = byId.get(imageId);
    if (!img) {
      orphanImages.add(imageId);
      continue;
    }
    const s = segDecode(blob, `${img.name}/${seg}`);
    const base = seg * SEGMENT_ENTRIES;
    let own = 0;
    const visit = (e: number, i: number, times: number) => {
      const slot = e - 2;
      own += times;
      if (slot >= next) {
        fault('corruption', 'map-points-past-end', `image ${img.name} map entry at block ${base + i} points at slot ${slot}, past the end of the store (next_slot ${next})`);
        return;
      }
      refs[slot] += times;
      if (free[slot] && !freeHits.has(`${imageId}:${slot}`)) {
        freeHits.add(`${imageId}:${slot}`);
        // Marked repaired below, once the slot has been taken back from the free list.
        fault('corruption', 'map-points-at-free-slot', `image ${img.name} map entry at block ${base + i} points at free slot ${slot}`);
      }
    };
    if (typeof s === 'number') {
      if (s >= 2) visit(s, 0, SEGMENT_ENTRIES);
    } else {
      for (let i = 0; i < s.length; i++) if (s[i] >= 2) visit(s[i], i, 1);
    }
    ownCounted.set(imageId, (ownCounted.get(imageId) ?? 0) + own);
  }
  for (const id of orphanImages) {
    // Their references were not counted, so the refcount pass turns them into leaks to repair.
    if (repair) db.prepare('DELETE FROM segments WHERE image_id = ?').run(id);
    fault('leak', 'orphan-map', `map segments of missing image id ${id}`, repair);
  }
  for (const img of images) {
    const counted = ownCounted.get(img.id) ?? 0;
    if (counted !== img.own_blocks) {
      if (repair) db.prepare('UPDATE images SET own_blocks = ? WHERE id = ?').run(counted, img.id);
      fault('corruption', 'own-blocks', `image ${img.name}: own_blocks says ${img.own_blocks}, its map holds ${counted} slots`, repair);
    }
  }

  // ---- refcounts, hashes and free list, slot by slot -------------------------
  const edit = slotEditor(db);
  /** Slots repair puts on the free list, stamped together (freelist.ts). */
  const toFree: number[] = [];
  const delFree = db.prepare('DELETE FROM free_slots WHERE slot = ?');
  const live = new Uint8Array(next);
  const inUse: number[] = [];
  const hashes = new Map<number, number>();
  const beyond: number[] = [];
  let liveCount = 0;
  /** Containers with their refcount, and the live fragments counted in each. */
  const containers = new Map<number, number>();
  const fragmentsIn = new Map<number, number>();
  const packedSeen = { packedBlocks: 0, packedBytes: 0, containers: 0 };
  const packedAt: number[] = [];
  forEachLiveSlot(db, (slot, rc, hash, w0, w1) => {
    liveCount++;
    if (slot >= next) {
      beyond.push(slot);
      return;
    }
    live[slot] = 1;
    const n = refs[slot];
    if (w0 === CONTAINER) {
      containers.set(slot, rc);
      packedSeen.containers++;
      if (n > 0) fault('corruption', 'bad-location', `slot ${slot} holds packed fragments, yet maps reference it ${n} times`);
      return;
    }
    if (isPackedLoc(w0) && n > 0) {
      const c = w0 - 1;
      if (fragmentLength(w1) === 0 || fragmentLength(w1) > BLOCK_SIZE) {
        fault('corruption', 'bad-location', `slot ${slot}: its fragment (offset ${fragmentOffset(w1)}, ${fragmentLength(w1)} bytes) is not a fragment of one block`);
      }
      fragmentsIn.set(c, (fragmentsIn.get(c) ?? 0) + 1);
      packedAt.push(slot, c);
      if (fragmentSpans(w1)) {
        // It runs on into the next slot, which must be a container too and counts it as well.
        fragmentsIn.set(c + 1, (fragmentsIn.get(c + 1) ?? 0) + 1);
        packedAt.push(slot, c + 1);
      }
      packedSeen.packedBlocks++;
      packedSeen.packedBytes += fragmentLength(w1);
    }
    if (n === 0) {
      if (repair) {
        edit.set(slot, 0);
        if (w0 !== 0) edit.setLoc(slot, 0, 0);
        if (w0 === REMOTE) dropRemoteLoc(db, slot);
        toFree.push(slot);
      }
      fault('leak', 'refcount-high', `slot ${slot}: refcount ${rc}, maps reference it 0 times`, repair);
      return;
    }
    if (w0 === REMOTE) {
      // Still in a remote pack (a lazy clone's): no bytes here to verify; its place must be recorded.
      if (remotePlacesOf(db, [slot]).size === 0) fault('corruption', 'bad-location', `slot ${slot}: its location says remote, but no remote place is recorded`);
    } else inUse.push(slot);
    hashes.set(slot, hash);
    if (rc !== n) {
      if (repair) edit.set(slot, n);
      if (rc > n) fault('leak', 'refcount-high', `slot ${slot}: refcount ${rc}, maps reference it ${n} times`, repair);
      else fault('corruption', 'refcount-low', `slot ${slot}: refcount ${rc}, maps reference it ${n} times`, repair);
    }
    if (free[slot]) {
      // Named by the map pass (map-points-at-free-slot); leaving the free list is the repair.
      if (repair) delFree.run(slot);
      markFreeHitsRepaired(faults, slot, repair);
    }
  });
  // A packed block must lie in a live container; a container counts its live fragments.
  for (let k = 0; k < packedAt.length; k += 2) {
    if (!containers.has(packedAt[k + 1])) fault('corruption', 'bad-location', `slot ${packedAt[k]}: packed into slot ${packedAt[k + 1]}, which is not a container in use`);
  }
  for (const [c, rc] of containers) {
    const n = fragmentsIn.get(c) ?? 0;
    if (rc === n) continue;
    if (repair) {
      edit.set(c, n);
      if (n === 0) {
        edit.setLoc(c, 0, 0);
        toFree.push(c);
      }
    }
    if (rc > n) fault('leak', 'refcount-high', `container slot ${c}: refcount ${rc}, holds ${n} live fragments`, repair);
    else fault('corruption', 'refcount-low', `container slot ${c}: refcount ${rc}, holds ${n} live fragments`, repair);
  }
  const packedMeta = packedCounts(db);
  if (packedMeta.packedBlocks !== packedSeen.packedBlocks || packedMeta.packedBytes !== packedSeen.packedBytes || packedMeta.containers !== packedSeen.containers) {
    // Repair sets them after the edit's own commit, which moves them by what it changed.
    fault('leak', 'packed-counts', `the store counts ${packedMeta.packedBlocks} packed blocks (${packedMeta.packedBytes} bytes) in ${packedMeta.containers} containers; its locations say ${packedSeen.packedBlocks} (${packedSeen.packedBytes} bytes) in ${packedSeen.containers}`, repair);
  }
  for (const slot of beyond) {
    // A refcount past next_slot: the allocator could hand the slot out again.
    fault('corruption', 'list-past-end', `slot ${slot}: has a refcount but is at or past next_slot ${next}`);
  }
  const scratch = Buffer.allocUnsafe(BLOCK_SIZE);
  for (let slot = 0; slot < next; slot++) {
    if (live[slot]) continue;
    if (refs[slot] > 0) {
      // Referenced but counted 0: take it back from wherever it is, with the hash of what it holds now.
      let ok = true;
      if (repair) {
        try {
          store.readUnverified(slot as SlotNumber, 1, scratch, 0);
          delFree.run(slot);
          const hash = store.hash(scratch);
          edit.set(slot, refs[slot], hash);
          indexSlots(db, [hash, slot]);
        } catch {
          ok = false;
        }
      }
      if (!free[slot]) fault('corruption', 'refcount-low', `slot ${slot}: refcount 0, maps reference it ${refs[slot]} times`, repair && ok);
      else markFreeHitsRepaired(faults, slot, repair && ok);
      continue;
    }
    if (!free[slot]) {
      if (repair) toFree.push(slot);
      fault('leak', 'lost-slot', `slot ${slot}: neither referenced nor on the free list`, repair);
    }
  }
  const counted = usedSlotCount(db);
  edit.commit();
  if (repair) {
    // What the locations say once the repairs above are in (freed leaks lost their fragments).
    const now = { packedBlocks: 0, packedBytes: 0, containers: 0 };
    forEachLiveSlot(db, (_slot, _rc, _hash, w0, w1) => {
      if (w0 === CONTAINER) now.containers++;
      else if (isPackedLoc(w0)) {
        now.packedBlocks++;
        now.packedBytes += fragmentLength(w1);
      }
    }, { hashes: false });
    setMeta(db, 'packed_blocks', now.packedBlocks);
    setMeta(db, 'packed_bytes', now.packedBytes);
    setMeta(db, 'container_slots', now.containers);
  }
  if (counted !== liveCount) {
    if (repair) setMeta(db, 'used_slots', liveCount + (usedSlotCount(db) - counted));
    fault('leak', 'used-slots', `the store counts ${counted} slots in use, its refcounts say ${liveCount}`, repair);
  }

  freeSlots(db, toFree);

  // ---- data: read every slot in use, verify its hash ----------------------
  const verified = verifySlots(store, inUse, hashes, fault, onProgress);

  return summarize(faults, images.length, next, verified);
}

function summarize(faults: Fault[], images: number, slots: number, verified: number): CheckReport {
  const open = faults.filter((f) => !f.repaired);
  const status = open.some((f) => f.class === 'corruption') ? 'corrupt' : open.length > 0 ? 'leaks' : 'clean';
  return {
    images,
    slots,
    slotsVerified: verified,
    verifiedBytes: verified * BLOCK_SIZE,
    faults,
    corruptions: faults.filter((f) => f.class === 'corruption').length,
    leaks: faults.filter((f) => f.class === 'leak').length,
    repaired: faults.filter((f) => f.repaired).length,
    status,
    exitStatus: status === 'corrupt' ? 2 : status === 'leaks' ? 3 : 0,
    damagedReads: [],
    damagedReadsNotListed: 0,
    damage: null,
    elapsedMs: 0,
  };
}

function markFreeHitsRepaired(faults: Fault[], slot: number, repaired: boolean): void {
  const tail = ` points at free slot ${slot}`;
  for (const f of faults) if (f.kind === 'map-points-at-free-slot' && f.message.endsWith(tail)) f.repaired = repaired;
}

/**
 * Reads slots in runs of consecutive numbers and compares each block's hash with its index row.
 * Unverified reads: check does the comparing itself, to name each bad slot rather than stop at the first.
 */
type DataFault = (c: FaultClass, k: Fault['kind'], m: string, repaired: boolean, slot: number) => void;

function verifySlots(store: Store, slots: readonly number[], hashes: Map<number, number>, fault: DataFault, onProgress?: OnProgress): number {
  const buf = Buffer.allocUnsafe(VERIFY_RUN * BLOCK_SIZE);
  const total = slots.length * BLOCK_SIZE;
  let verified = 0;
  let i = 0;
  while (i < slots.length) {
    onProgress?.(i * BLOCK_SIZE, total);
    let n = 1;
    while (i + n < slots.length && n < VERIFY_RUN && slots[i + n] === slots[i] + n) n++;
    try {
      store.readUnverified(slots[i] as SlotNumber, n, buf, 0);
    } catch (e) {
      // Fall back to one slot at a time, so one short file names the slots it lost.
      for (let k = 0; k < n; k++) verified += verifyOne(store, slots[i + k], hashes, fault, buf) ? 1 : 0;
      i += n;
      continue;
    }
    for (let k = 0; k < n; k++) {
      const block = buf.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
      if (store.hash(block) !== hashes.get(slots[i + k])) fault('corruption', 'bad-hash', `slot ${slots[i + k]}: content does not match its hash`, false, slots[i + k]);
      verified++;
    }
    i += n;
  }
  onProgress?.(total, total);
  return verified;
}

function verifyOne(store: Store, slot: number, hashes: Map<number, number>, fault: DataFault, buf: Buffer): boolean {
  try {
    store.readUnverified(slot as SlotNumber, 1, buf, 0);
  } catch (e) {
    fault('corruption', 'unreadable-slot', `slot ${slot}: cannot be read (${(e as Error).message})`, false, slot);
    return false;
  }
  if (store.hash(buf.subarray(0, BLOCK_SIZE)) !== hashes.get(slot)) fault('corruption', 'bad-hash', `slot ${slot}: content does not match its hash`, false, slot);
  return true;
}

