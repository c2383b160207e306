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
import { damagedReads, type DamagedRead } from './damaged-reads.js';
import { faultPoint } from '../core/faults.js';
import { STORE_LEASE, leaseTx, releaseLease } from '../leases/leases.js';
import { type Store } from '../core/store.js';
import { slotReader } from '../slots/slots.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from '../core/types.js';
import { MAX_FAULTS_PER_KIND, type Fault } from './check/faults.js';
import { checkContext } from './check/context.js';
import { checkCatalog } from './check/catalog.js';
import { readFreeList, checkUnlisted } from './check/free-list.js';
import { countReferences } from './check/maps.js';
import { checkSlots } from './check/slots.js';
import { checkContainers } from './check/containers.js';
import { applyRepairs } from './check/repair.js';
import { verifySlots } from './check/verify.js';
import { readTx, type WriteTx } from '../core/tx.js';
import { DESPITE_DAMAGE, clearDamage, storeDamage, type StoreDamage } from '../core/damage.js';

export type { Fault, FaultClass } from './check/faults.js';

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
      report = readTx(store, run);
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
  const { reads, more } = readTx(store, () => damagedReads(store, damaged, MAX_FAULTS_PER_KIND));
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
    const now = slotReader(store);
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

/** The passes in order; each reports its faults as it finds them, so the report lists them in this order. */
function runCheck(store: Store, repair: boolean, onProgress?: OnProgress): CheckReport {
  const cx = checkContext(store, repair);
  const catalog = checkCatalog(cx);
  const free = readFreeList(cx);
  const refs = countReferences(cx, catalog, free);
  const seen = checkSlots(cx, refs, free);
  checkContainers(cx, seen);
  checkUnlisted(cx, refs, free, seen);
  applyRepairs(cx, seen);
  const verified = verifySlots(store, seen.inUse, seen.hashes, cx.fault, onProgress);
  return summarize(cx.faults, catalog.images.length, cx.next, verified);
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
