/**
 * This store's own copies of a remote's blocks: what pull and lazy clone
 * name instead of fetching. A block is looked up by its place's hint (the
 * pusher's 53-bit hash, this store's dedup index key) and proven by its
 * SHA-256 digest: the index is a hint, the digest is proof. A slot whose
 * bytes are still in a remote pack (a lazy clone's, not fetched, or
 * evicted) is no copy.
 *
 * A copy is safe to name while its slot cannot have been reused since its
 * bytes were proven: inside the write transaction that names it (lazy
 * clone: localSlotOf), or, for a pull that proves copies batch by batch
 * and names them at the end, under a pinned lease taken before the first
 * look (holdCopies): a slot freed meanwhile is not reused while it lives,
 * so one still live when named was never freed, and holds what was proven.
 */
import { BLOCK_SIZE, type ImageRecord, type SlotNumber, type Store, type WriteTx } from '../../store/core/index.js';
import { indexLookup, slotReader, type SlotReader } from '../../store/slots/index.js';
import { bytesHere, isRemoteMiss } from '../../store/blocks/index.js';
import { leaseTx, releaseLease } from '../../store/leases/index.js';
import type { BlockPlace } from '../objects/index-file.js';
import { sha256 } from '../objects/layout.js';

/** Local candidates tried per hint: a flood of colliding hints costs a few reads, never a wrong block. */
const CANDIDATES = 4;

/** Live, and its bytes in this store (not only in a remote pack). */
const isLocalCopy = (slots: SlotReader, slot: number): boolean => slots.refcount(slot) > 0 && bytesHere(slots.loc(slot));

/** For each place, a live slot of this store whose bytes have its digest (found by its hint), or undefined. */
export function localCopies(store: Store, places: readonly BlockPlace[]): (SlotNumber | undefined)[] {
  const cands = indexLookup(store, places.map((p) => p.hint), CANDIDATES);
  const slots = slotReader(store);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  const proven = (slot: number, digest: Buffer): boolean => {
    if (!isLocalCopy(slots, slot)) return false; // a stale row, or bytes not here to compare
    try {
      store.readUnverified(slot as SlotNumber, 1, buf, 0); // the digest is the proof
    } catch (e) {
      if (isRemoteMiss(e)) return false; // evicted since the look above
      throw e;
    }
    return sha256(buf).equals(digest);
  };
  return places.map((p) => (cands.get(p.hint) ?? []).find((slot) => proven(slot, p.digest)) as SlotNumber | undefined);
}

/** A local copy of one block, or undefined. Called inside a write transaction, it stays a copy until that commits. */
export function localSlotOf(store: Store, p: BlockPlace): SlotNumber | undefined {
  return localCopies(store, [p])[0];
}

/** Copies found now and named later, in another transaction (see the header). */
export interface HeldCopies {
  /** localCopies, under the pin. */
  find(places: readonly BlockPlace[]): (SlotNumber | undefined)[];
  /** Inside the transaction that names them: for each of `slots`, whether it is no copy any more (freed, or evicted, since find). */
  lost(tx: WriteTx, slots: readonly SlotNumber[]): boolean[];
  /** Ends the pin: call once what was found is named (or abandoned). */
  release(): void;
}

/** Takes the pin (a pinned read lease on `image`, the image the copies go into) and returns the finder. */
export function holdCopies(store: Store, image: ImageRecord): HeldCopies {
  const pin = leaseTx(store, (take) => take(store, image.id, image.name, 'read', { pin: true }));
  let held = true;
  return {
    find: (places) => localCopies(store, places),
    lost: (tx, slots) => {
      const reader = slotReader(tx);
      return slots.map((s) => !isLocalCopy(reader, s));
    },
    release: () => {
      if (held) releaseLease(store, pin);
      held = false;
    },
  };
}
