/**
 * Dropping local copies of remote blocks: the other direction of
 * remote-locs.ts's installFetched. A lazy clone's layers (remote/lazy.ts)
 * name blocks that stay in the bucket; once fetched, a block sits in its
 * own slot like any other. Such a copy is a cache entry when every
 * reference to its slot comes from lazy layers of that remote: the bucket
 * still has it (the layers were made from its index), so dropping the
 * local bytes loses nothing. A slot some other map references (a leaf's
 * own write, an imported or pulled image that deduplicated into it) is
 * local data and never evicted; nor is a block of an image some process
 * holds open (busy.ts), whose holder may have cached its location.
 *
 * Evicting a batch is one write transaction: each block's bytes are read
 * and hashed (SHA-256: the remote's identity of a block; the XXH64 recorded
 * for the slot must agree first, so damaged bytes are never vouched for),
 * its place is looked up by digest (the caller's `placeOf`, the remote's
 * index cache: it names where the block is now, even after the bucket's
 * packs were rewritten, which a place kept from fetch time would not), its
 * location becomes REMOTE with that place in remote_locs, and its row
 * leaves the dedup index (nothing may come to share a block whose bytes
 * are not here to compare). The commit moves loc_seq, so other processes
 * drop cached locations. The same commit records the blocks' old places
 * (moved-places.ts): they are punched, under the write lock again, once no
 * reader that opened before the eviction may still read them there, and
 * only for slots still REMOTE (a fetch in between has written them back and
 * must keep them). A crash before the punch leaves the record, for the next
 * eviction or gc.
 *
 * Order: oldest fetched first, by the caller's `fetchedAt` (a hint kept in
 * the remote's cache; blocks it does not know, e.g. found locally at clone
 * time, go first), then by slot. Sizes count 4 KiB per block, stored
 * compressed or not.
 */
import { createHash } from 'node:crypto';
import { corrupt } from '../../errors.js';
import { busySlots } from '../leases/busy.js';
import { listImages } from '../images/catalog.js';
import { faultPoint } from '../core/faults.js';
import { freeSlots } from '../slots/freelist.js';
import { REMOTE, bytesHere, unreachable } from '../blocks/location.js';
import { punchMovedPlaces, recordMovedPlaces } from '../blocks/moved-places.js';
import { segmentsOf } from '../images/maps.js';
import { addFragmentRef, settleContainers } from '../slots/refcounts.js';
import { addRemoteLoc, type RemotePlace } from '../blocks/remote-locs.js';
import { slotEditor, slotReader } from '../slots/slots.js';
import { damagedSlotOf } from '../blocks/verify.js';
import { prepared } from '../core/statements.js';
import { metaNumber } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { BLOCK_SIZE, SEGMENT_ENTRIES, type ImageRecord, type SlotNumber } from '../core/types.js';
import { sqlOf, type WriteTx } from '../core/tx.js';

/** Blocks evicted per transaction: 16 MiB read and hashed under the write lock at most. */
const BATCH = 4096;

export interface CacheScope {
  remote: string;
  /** The remote a lazy layer's blocks come from; undefined for any other image. */
  lazyRemoteOf(rec: ImageRecord): string | undefined;
}

export interface CacheCount {
  /** Local blocks only `remote`'s lazy layers reference. */
  blocks: number;
  /** Of those, used by an image some process holds open (all of them while a check runs). */
  inUse: number;
}

/** The remote's cached blocks, and which of them nobody holds. Inside a write transaction (leases are settled there). */
function cachedSlots(store: Store, scope: CacheScope): { slots: number[]; busy: Uint8Array | null } {
  const next = metaNumber(store, 'next_slot');
  const refs = new Uint32Array(next);
  const mine = new Uint8Array(next);
  for (const rec of listImages(store)) {
    const from = scope.lazyRemoteOf(rec);
    if (from === undefined) continue;
    const own = from === scope.remote;
    for (const [, seg] of segmentsOf(store, rec.id)) {
      if (typeof seg === 'number') {
        // An all-equal segment: SEGMENT_ENTRIES references to one slot (as refcounts count it).
        if (seg >= 2 && seg - 2 < next) {
          refs[seg - 2] += SEGMENT_ENTRIES;
          if (own) mine[seg - 2] = 1;
        }
        continue;
      }
      for (let i = 0; i < seg.length; i++) {
        const e = seg[i];
        if (e < 2 || e - 2 >= next) continue;
        refs[e - 2]++;
        if (own) mine[e - 2] = 1;
      }
    }
  }
  const now = slotReader(store);
  const slots: number[] = [];
  for (let s = 0; s < next; s++) {
    if (!mine[s]) continue;
    if (!bytesHere(now.loc(s))) continue;
    // Any reference beyond the lazy layers' makes it local data.
    if (now.refcount(s) === refs[s]) slots.push(s);
  }
  return { slots, busy: busySlots(store, next) };
}

/** How many blocks the remote's cache holds here, and how many of them are in use. */
export function countCached(store: Store, scope: CacheScope): CacheCount {
  // A write transaction for the leases' sake (dead holders are cleared there); nothing is changed.
  return store.writeVolatile(() => {
    const { slots, busy } = cachedSlots(store, scope);
    return { blocks: slots.length, inUse: busy === null ? slots.length : slots.filter((s) => busy[s]).length };
  });
}

export interface EvictReport {
  remote: string;
  /** What the cache was brought down to (bytes). */
  to: number;
  before: CacheCount;
  evicted: number;
  /** Left because an open image uses them (or a check is running). */
  inUse: number;
  /** Left because the remote's index cache names no place for their digest, or the bucket no longer holds it. */
  unplaced: number;
  /** Left for now because `placeOf` could not yet vouch for their place (`'later'`): the caller confirms and calls again. */
  deferred: number;
  /** Left because their bytes no longer match their recorded hash (check reports them). */
  damaged: number;
  /** Blocks cached after. */
  after: number;
}

export interface EvictOptions {
  /**
   * Where the remote holds the block with this SHA-256 now; undefined: nowhere
   * (the block is kept); 'later': not known yet (kept by this call, counted
   * in `deferred`: a batch stops once it has as many of those as it may evict).
   */
  placeOf(digest: Buffer): Omit<RemotePlace, 'remote' | 'digest'> | undefined | 'later';
  /** When a slot's block was fetched (a hint; unknown: oldest). */
  fetchedAt?(slots: readonly number[]): Map<number, number>;
  /** Told each batch's slots once it has committed. */
  onEvicted?(slots: readonly number[]): void;
}

/** Evicts the remote's idle cached blocks, oldest fetched first, until at most `to` bytes are cached. */
export function evictCached(store: Store, scope: CacheScope, to: number, opts: EvictOptions): EvictReport {
  const keep = Math.floor(Math.max(0, to) / BLOCK_SIZE);
  const report: EvictReport = { remote: scope.remote, to, before: { blocks: 0, inUse: 0 }, evicted: 0, inUse: 0, unplaced: 0, damaged: 0, deferred: 0, after: 0 };
  /** Slots passed over for good (damaged, unplaced): not tried again by a later batch. */
  const skip = new Set<number>();
  for (let first = true; ; first = false) {
    // Each batch plans again under its own lock: references and leases may have changed since.
    const evicted = store.write((tx) => {
      const { slots, busy } = cachedSlots(store, scope);
      const idle = slots.filter((s) => busy !== null && !busy[s] && !skip.has(s));
      const inUse = busy === null ? slots.length : slots.length - slots.filter((s) => !busy[s]).length;
      if (first) report.before = { blocks: slots.length, inUse };
      report.inUse = inUse;
      report.after = slots.length;
      const over = slots.length - keep;
      if (over <= 0 || idle.length === 0) return [];
      const when = opts.fetchedAt?.(idle) ?? new Map<number, number>();
      idle.sort((a, b) => (when.get(a) ?? 0) - (when.get(b) ?? 0) || a - b);
      const out = evictBatch(store, tx, scope.remote, idle, Math.min(over, BATCH), opts, skip, report);
      report.after = slots.length - out.length;
      return out;
    });
    if (evicted.length === 0) break;
    report.evicted += evicted.length;
    faultPoint('evict.after-batch');
    opts.onEvicted?.(evicted);
    store.write(() => punchMovedPlaces(store));
    faultPoint('evict.after-punch');
  }
  return report;
}

/** Evicts up to `n` of `order`, in order. Inside the write transaction; returns the slots evicted. */
function evictBatch(store: Store, tx: WriteTx, remote: string, order: readonly number[], n: number, opts: EvictOptions, skip: Set<number>, report: EvictReport): number[] {
  const db = sqlOf(tx);
  const recorded = slotReader(store);
  const edit = slotEditor(tx);
  const containers = new Map<number, number>();
  const unindex = prepared(db, 'DELETE FROM hash_index WHERE hash = ? AND slot = ?');
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const out: number[] = [];
  const ownPlaces: number[] = [];
  let deferred = 0;
  for (const slot of order) {
    if (out.length >= n || deferred >= n) break;
    try {
      store.read(slot as SlotNumber, 1, buf, 0);
    } catch (e) {
      // Its bytes do not match its hash: the bucket's copy is not these bytes, so this one stays.
      if (damagedSlotOf(e) === undefined) throw e;
      report.damaged++;
      skip.add(slot);
      continue;
    }
    const hash = recorded.hash(slot);
    const digest = createHash('sha256').update(buf).digest();
    const place = opts.placeOf(digest);
    if (place === 'later') {
      deferred++;
      report.deferred++;
      skip.add(slot);
      continue;
    }
    if (!place) {
      report.unplaced++;
      skip.add(slot);
      continue;
    }
    const loc = edit.loc(slot);
    switch (loc.kind) {
      case 'packed':
        // A compressed copy's fragment leaves its container, which is freed when it empties.
        addFragmentRef(containers, loc, -1);
        break;
      case 'own':
        ownPlaces.push(slot);
        break;
      case 'remote':
      case 'container':
        throw corrupt(`slot ${slot} was to be evicted, but its block is not here (${loc.kind})`, { slot });
      default:
        unreachable(loc);
    }
    edit.setLoc(slot, REMOTE);
    addRemoteLoc(tx, slot, { remote, pack: place.pack, offset: place.offset, length: place.length, codec: place.codec, digest });
    unindex.run(hash, slot);
    out.push(slot);
  }
  const freed: number[] = [];
  settleContainers(edit, containers, [], freed);
  edit.commit();
  freeSlots(tx, freed);
  recordMovedPlaces(tx, ownPlaces);
  return out;
}
