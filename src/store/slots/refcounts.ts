/**
 * Refcounts: how many map entries, over all images, point at a slot.
 * A slot whose count reaches zero moves to the free list in the same
 * transaction; other processes see it free only once that commits.
 */
import { storeCorrupt } from '../../errors.js';
import { freeSlots } from './freelist.js';
import { indexSlots, slotEditor, type SlotEdit } from './slots.js';
import { addRemoteLoc, dropRemoteLoc, type RemotePlace } from '../blocks/remote-locs.js';
import { CONTAINER, OWN, REMOTE, containersOf, unreachable, type PackedLocation } from '../blocks/location.js';
import type { BlockHash } from '../core/hash.js';
import { BLOCK_SIZE, type OnProgress, type SlotNumber } from '../core/types.js';
import { type WriteTx } from '../core/tx.js';

export type RefDeltas = Map<number, number>;

export function addRef(d: RefDeltas, slot: number, by: number): void {
  const v = (d.get(slot) ?? 0) + by;
  if (v === 0) d.delete(slot);
  else d.set(slot, v);
}

export interface ApplyOptions {
  /** Counts the slots updated, as 4 KiB each: for rm or flatten of a large image this loop is most of the time. */
  onProgress?: OnProgress;
  /**
   * Where the dedup index rows of `fresh` slots go: 'now' adds them in this
   * transaction; an array collects them (hash, slot, ...) for the caller to
   * add later in one sorted batch (the index is a hint: see slots.ts).
   */
  index?: 'now' | number[];
  /** Where the packed ones among `fresh` live, and the containers written for them. */
  packing?: Packing;
  /** Fresh slots whose block is still in a remote pack (a lazy clone's layers): nothing was written for them. */
  remote?: Map<SlotNumber, RemotePlace>;
}

/** New blocks stored as fragments: their locations, and the fresh container slots that hold them. */
export interface Packing {
  locs: Map<SlotNumber, PackedLocation>;
  containers: SlotNumber[];
}

/** Counts a fragment in its container, and in the next one too when it runs on into it. */
export function addFragmentRef(delta: Map<number, number>, loc: PackedLocation, by: number): void {
  for (const c of containersOf(loc)) addRef(delta, c, by);
}

/**
 * Settles container refcounts (live fragments in each) after blocks moved in
 * or out: `delta` per container; `fresh` containers were written by this
 * transaction and start at their delta. Containers left with no fragment go
 * to `freed`. Call before edit.commit().
 */
export function settleContainers(edit: SlotEdit, delta: Map<number, number>, fresh: readonly number[], freed: number[]): void {
  for (const c of fresh) {
    const n = delta.get(c) ?? 0;
    delta.delete(c);
    if (n > 0) {
      edit.set(c, n, NaN); // NaN: never equal to a block's hash, so the dedup index never offers it
      edit.setLoc(c, CONTAINER);
    } else freed.push(c);
  }
  for (const [c, d] of delta) {
    const held = edit.loc(c);
    switch (held.kind) {
      case 'container':
        break;
      case 'own':
      case 'packed':
      case 'remote':
        throw storeCorrupt(`a block's location names slot ${c}, which is not a container`, { slot: c });
      default:
        unreachable(held);
    }
    const next = edit.get(c) + d;
    if (next < 0) throw storeCorrupt(`container slot ${c} would hold fewer than no fragments`, { slot: c });
    edit.set(c, next);
    if (next === 0) {
      edit.setLoc(c, OWN);
      freed.push(c);
    }
  }
}

/**
 * Applies deltas. `fresh` are slots allocated by this transaction, with the
 * hash of what was written to them; their refcount starts at their delta,
 * and one referenced by nothing in the end goes straight back to the free
 * list.
 */
export function applyRefDeltas(tx: WriteTx, deltas: RefDeltas, fresh: Map<SlotNumber, BlockHash> = new Map(), opts: ApplyOptions = {}): void {
  const { onProgress } = opts;
  const edit = slotEditor(tx);
  const freed: number[] = [];
  const pairs: number[] = Array.isArray(opts.index) ? opts.index : [];
  const containerDelta = new Map<number, number>();
  const locs = opts.packing?.locs;
  for (const [slot, hash] of fresh) {
    const d = deltas.get(slot) ?? 0;
    if (d > 0) {
      edit.set(slot, d, hash);
      const loc = locs?.get(slot);
      const far = opts.remote?.get(slot);
      if (far) {
        edit.setLoc(slot, REMOTE);
        addRemoteLoc(tx, slot, far);
        continue; // not indexed: nothing may share it before its bytes are here to compare
      }
      if (loc) {
        edit.setLoc(slot, loc);
        addFragmentRef(containerDelta, loc, 1);
      }
      pairs.push(hash, slot);
    } else freed.push(slot); // written but, in the end, referenced by nothing
  }
  const total = deltas.size * BLOCK_SIZE;
  let i = 0;
  for (const [slot, d] of deltas) {
    if (onProgress && i++ % 1024 === 0) onProgress(i * BLOCK_SIZE, total);
    if (fresh.has(slot as SlotNumber)) continue;
    const cur = edit.get(slot);
    if (cur === 0) throw storeCorrupt(`map references slot ${slot}, whose refcount is 0`, { slot });
    const next = cur + d;
    if (next < 0) throw storeCorrupt(`refcount of slot ${slot} would fall below zero`, { slot });
    edit.set(slot, next);
    if (next === 0) {
      freed.push(slot);
      const loc = edit.loc(slot);
      switch (loc.kind) {
        case 'own':
          break;
        case 'container':
          throw storeCorrupt(`map references slot ${slot}, which holds packed fragments`, { slot });
        case 'remote':
          // Never fetched: nothing of it is here to free but its place.
          edit.setLoc(slot, OWN);
          dropRemoteLoc(tx, slot);
          break;
        case 'packed':
          // A packed block's fragment dies with it; its container lives while any other does.
          addFragmentRef(containerDelta, loc, -1);
          edit.setLoc(slot, OWN);
          break;
        default:
          unreachable(loc);
      }
    }
  }
  settleContainers(edit, containerDelta, opts.packing?.containers ?? [], freed);
  edit.commit();
  if (opts.index === undefined || opts.index === 'now') indexSlots(tx, pairs);
  freeSlots(tx, freed);
  onProgress?.(total, total);
}
