/**
 * Moving blocks without touching maps: compressing blocks already stored,
 * recompressing them with another codec or putting them back in their own
 * slot (`strata compress --codec`), and repacking half-empty containers (gc).
 *
 * A move writes the block's new home (fresh container slots, synced), then
 * commits the new locations, then gives the old place back: a raw block's
 * own slot is punched (the slot number stays the block's identity), an
 * emptied container goes to the free list like any freed slot. Neither
 * happens while a reader that opened before the move may still read there
 * (moved-places.ts, freelist.ts): the commit records the old places, and
 * this or a later move, or gc, punches them once no such reader remains. A
 * block put back in its own slot is written there first: that place belongs
 * to its number alone and holds nothing committed while the block is packed
 * (at most its own bytes, not yet punched). A crash before the commit leaves
 * the old locations, all intact; after it, old places recorded and not yet
 * punched, which the next gc punches.
 *
 * Blocks of images that someone holds open (any live lease, through its
 * whole chain) are not moved: the holder may have read their locations and
 * must find the bytes where it looked (locations.ts). A store-wide lease (a
 * check) stops all moves. Such blocks are counted as `busy`, for a later run.
 *
 * May run beside anything: each batch is one write transaction.
 */
import { corrupt } from '../../errors.js';
import { allocateRun } from '../slots/allocator.js';
import { busySlots, markSlotsOf } from '../leases/busy.js';
import { listImages } from '../images/catalog.js';
import { compressEach, CODEC_IDS, type CodecSpec } from '../blocks/codecs.js';
import { fragmentLocation, fragmentRun, type FragmentRun } from '../blocks/fragment-run.js';
import { faultPoint } from '../core/faults.js';
import { freeSlots } from '../slots/freelist.js';
import { OWN, fragmentSpans, unreachable, type Location, type PackedLocation } from '../blocks/location.js';
import { punchMovedPlaces, recordMovedPlaces } from '../blocks/moved-places.js';
import { addFragmentRef, settleContainers } from '../slots/refcounts.js';
import { forEachLiveSlot, slotEditor } from '../slots/slots.js';
import { metaNumber } from '../core/meta.js';
import { type Store } from '../core/store.js';
import { damagedSlotOf } from '../blocks/verify.js';
import { BLOCK_SIZE, isFrozen, type ImageRecord, type OnProgress, type SlotNumber } from '../core/types.js';
import { heldTx, type WriteTx } from '../core/tx.js';

/** Blocks per transaction: 16 MiB read, compressed and written per batch. */
const BATCH = 4096;

export interface CompressReport {
  codec: string;
  /** Blocks looked at: referenced by the chosen images and not yet stored with this codec. */
  blocks: number;
  /** Of those, now stored compressed with it. */
  compressed: number;
  /** Stored as they are: they would not shrink enough. */
  incompressible: number;
  /** Compressed blocks put back in their own slot (codec none, or no longer shrinking enough). */
  uncompressed: number;
  /** Not moved because an open image uses them (or a check is running). */
  busy: number;
  /** Not moved because their bytes do not match their hash: left in place for check to report. */
  damaged: number;
  /** Bytes of the compressed blocks before (4 KiB each) and after (their container slots). */
  bytesBefore: number;
  bytesAfter: number;
  elapsedMs: number;
}

/**
 * Whether compress has nothing to do with a slot at this location: its block
 * is already stored as `spec` asks, or is not here to move. A block still in
 * a remote pack (a lazy clone's) is not here: fetched, it is a raw block like
 * any. A container is not a block.
 */
function settled(spec: CodecSpec | null, loc: Location): boolean {
  switch (loc.kind) {
    case 'own':
      return spec === null;
    case 'packed':
      return spec !== null && loc.codec === CODEC_IDS[spec.codec];
    case 'remote':
    case 'container':
      return true;
    default:
      return unreachable(loc);
  }
}

/**
 * Stores the blocks of frozen images with `spec`: compresses those stored as
 * they are, recompresses those compressed with another codec, and with null
 * puts compressed ones back in their own slot. With `images`, those images'
 * own layers; else every frozen image. Blocks only a writable leaf uses stay
 * as they are (leaves keep hot blocks uncompressed).
 */
export function compressStored(store: Store, spec: CodecSpec | null, opts: { images?: ImageRecord[]; onProgress?: OnProgress } = {}): CompressReport {
  const t0 = performance.now();
  const report: CompressReport = {
    codec: spec?.codec ?? 'none',
    blocks: 0,
    compressed: 0,
    incompressible: 0,
    uncompressed: 0,
    busy: 0,
    damaged: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    elapsedMs: 0,
  };
  // Candidates are chosen once; each batch re-checks them under its own lock.
  const candidates = store.write(() => {
    const next = metaNumber(store, 'next_slot');
    const want = new Uint8Array(next);
    const images = opts.images ?? listImages(store).filter(isFrozen);
    markSlotsOf(store, images.map((r) => r.id), want);
    const out: number[] = [];
    forEachLiveSlot(
      store,
      (slot, _rc, _hash, loc) => {
        if (slot < next && want[slot] && !settled(spec, loc)) out.push(slot);
      },
      { hashes: false },
    );
    return out;
  });
  report.blocks = candidates.length;
  const total = candidates.length * BLOCK_SIZE;
  for (let b = 0; b < candidates.length; b += BATCH) {
    opts.onProgress?.(b * BLOCK_SIZE, total);
    const part = candidates.slice(b, b + BATCH);
    store.write((tx) => compressBatch(store, tx, spec, part, report));
    faultPoint('compress.after-commit');
    store.write(() => punchMovedPlaces(store));
  }
  opts.onProgress?.(total, total);
  report.elapsedMs = Math.round(performance.now() - t0);
  return report;
}

/** One transaction: stores the still-eligible slots of `part` with `spec`. */
/** store.read() of a run of slots; a damaged block's slot goes to `damaged` (its bytes are not to be used) instead of ending the read. */
function readSound(store: Store, first: number, n: number, into: Buffer, at: number, damaged: Set<number>): void {
  try {
    store.read(first as SlotNumber, n, into, at);
  } catch (e) {
    if (damagedSlotOf(e) === undefined) throw e;
    for (let k = 0; k < n; k++) {
      try {
        store.read((first + k) as SlotNumber, 1, into, at + k * BLOCK_SIZE);
      } catch (e2) {
        if (damagedSlotOf(e2) === undefined) throw e2;
        damaged.add(first + k);
      }
    }
  }
}

function compressBatch(store: Store, tx: WriteTx, spec: CodecSpec | null, part: number[], report: CompressReport): void {
  const next = metaNumber(store, 'next_slot');
  const busy = busySlots(store, next);
  const edit = slotEditor(tx);
  const todo = part.filter((s) => {
    if (s >= next || edit.get(s) === 0 || settled(spec, edit.loc(s))) return false; // freed or moved since
    if (busy === null || busy[s]) {
      report.busy++;
      return false;
    }
    return true;
  });
  if (todo.length === 0) return;
  // Each block's bytes, wherever it lives now (runs in place with one read), verified as read.
  // A block whose bytes no longer match its hash stays where it is: moving it would carry the
  // damage into a new home and lose the evidence check reads.
  const src = Buffer.allocUnsafe(todo.length * BLOCK_SIZE);
  const damaged = new Set<number>();
  for (let i = 0; i < todo.length; ) {
    let n = 1;
    while (i + n < todo.length && todo[i + n] === todo[i] + n && n < 256) n++;
    readSound(store, todo[i], n, src, i * BLOCK_SIZE, damaged);
    i += n;
  }
  report.damaged += damaged.size;
  const sound: number[] = [];
  const views: Buffer[] = [];
  todo.forEach((slot, i) => {
    if (damaged.has(slot)) return;
    sound.push(slot);
    views.push(src.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
  });
  const run = fragmentRun();
  const moves: Move[] = [];
  /** Packed blocks to put back in their own slot: [slot, bytes, where it is packed now]. */
  const home: [number, Buffer, PackedLocation][] = [];
  /** Into its own place if it is packed; a block already there stays (`stays`). */
  const toOwnPlace = (i: number, stays: () => void) => {
    const loc = edit.loc(sound[i]);
    switch (loc.kind) {
      case 'packed':
        home.push([sound[i], views[i], loc]);
        return;
      case 'own':
        stays();
        return;
      case 'remote':
      case 'container':
        return; // settled: never in `todo`
      default:
        unreachable(loc);
    }
  };
  if (spec === null) sound.forEach((_, i) => toOwnPlace(i, () => {}));
  else {
    compressEach(spec, views, (i, buf, at, length) => {
      if (length > 0) moves.push({ slot: sound[i], at: run.add(buf, at, length), length, codec: CODEC_IDS[spec.codec] });
      else toOwnPlace(i, () => report.incompressible++);
    });
  }
  if (home.length > 0) {
    // Into the block's own place, synced before the commit that points there.
    store.blocks.writeScattered(
      home.map(([slot]) => slot as SlotNumber),
      home.map(([, b]) => b),
    );
    store.blocks.sync();
    faultPoint('uncompress.after-data-sync');
    const delta = new Map<number, number>();
    for (const [slot, , packed] of home) {
      addFragmentRef(delta, packed, -1);
      edit.setLoc(slot, OWN);
    }
    const freed: number[] = [];
    settleContainers(edit, delta, [], freed);
    freeSlots(tx, freed);
    report.uncompressed += home.length;
  }
  const moved = placeFragments(store, edit, run, moves);
  edit.commit();
  report.compressed += moved.length;
  report.bytesBefore += moved.length * BLOCK_SIZE;
  report.bytesAfter += run.slots() * BLOCK_SIZE;
}

/** A block moving into the run: where its fragment starts in it, how long, which codec. */
interface Move {
  slot: number;
  at: number;
  length: number;
  codec: number;
}

/**
 * Writes and syncs `run` into fresh container slots, and points each moved
 * block at its fragment there; containers left empty are freed. Inside a
 * write transaction; commits the slot editor.
 */
function placeFragments(store: Store, edit: ReturnType<typeof slotEditor>, run: FragmentRun, moves: readonly Move[]): number[] {
  if (moves.length === 0) return [];
  const slots = allocateRun(store, run.slots());
  store.blocks.write(slots[0], run.pieces());
  store.blocks.sync();
  faultPoint('relocate.after-data-sync');
  const delta = new Map<number, number>();
  const ownPlaces: number[] = [];
  for (const m of moves) {
    const old = edit.loc(m.slot);
    switch (old.kind) {
      case 'packed':
        addFragmentRef(delta, old, -1);
        break;
      case 'own':
        ownPlaces.push(m.slot);
        break;
      case 'remote':
      case 'container':
        throw corrupt(`slot ${m.slot} was to be packed, but its block is not here (${old.kind})`, { slot: m.slot });
      default:
        unreachable(old);
    }
    const loc = fragmentLocation(slots, m.at, m.length, m.codec);
    edit.setLoc(m.slot, loc);
    addFragmentRef(delta, loc, 1);
  }
  const freed: number[] = [];
  settleContainers(edit, delta, slots, freed);
  edit.commit();
  freeSlots(heldTx(store), freed);
  recordMovedPlaces(heldTx(store), ownPlaces);
  return moves.map((m) => m.slot);
}

export interface RepackReport {
  /** Containers less than half full of live fragments, emptied into new ones. */
  containers: number;
  /** Fragments moved. */
  fragments: number;
  /** Container slots before and after (freed ones go back like any free slot). */
  slotsBefore: number;
  slotsAfter: number;
  /** Fragments left in place because an open image uses their blocks. */
  busy: number;
  /** Old places of moved blocks punched: those no reader that opened before their move may still read (moved-places.ts). */
  placesPunched: number;
}

/**
 * gc's part: repacks containers whose live fragments fill less than half of
 * them. One transaction; the emptied containers are on the free list when
 * it commits, for gc's reclaim to punch.
 */
export function repackContainers(store: Store): RepackReport {
  const report = store.write((tx) => {
    const next = metaNumber(store, 'next_slot');
    const live = new Map<number, number>(); // container -> live bytes in it
    const members = new Map<number, [number, PackedLocation][]>(); // container -> [slot, location] of fragments touching it
    let containers = 0;
    const touch = (c: number, bytes: number, m: [number, PackedLocation]) => {
      live.set(c, (live.get(c) ?? 0) + bytes);
      let list = members.get(c);
      if (!list) members.set(c, (list = []));
      list.push(m);
    };
    forEachLiveSlot(
      store,
      (slot, _rc, _hash, loc) => {
        switch (loc.kind) {
          case 'container':
            containers++;
            if (!live.has(slot)) live.set(slot, 0);
            break;
          case 'packed': {
            const inFirst = Math.min(loc.length, BLOCK_SIZE - loc.offset);
            touch(loc.container, inFirst, [slot, loc]);
            if (fragmentSpans(loc)) touch(loc.container + 1, loc.length - inFirst, [slot, loc]);
            break;
          }
          case 'own':
          case 'remote':
            break;
          default:
            unreachable(loc);
        }
      },
      { hashes: false },
    );
    // Old places of earlier moves whose readers have gone (or that a crash left unpunched).
    const r: RepackReport = { containers: 0, fragments: 0, slotsBefore: containers, slotsAfter: containers, busy: 0, placesPunched: punchMovedPlaces(store) };
    const sparse = [...live].filter(([, bytes]) => bytes < BLOCK_SIZE / 2).map(([c]) => c);
    if (sparse.length < 2) return r; // one half-empty container cannot be packed any tighter
    const busy = busySlots(store, next);
    const edit = slotEditor(tx);
    const run = fragmentRun();
    const moves: Move[] = [];
    const moving = new Set<number>();
    const buf = Buffer.allocUnsafe(2 * BLOCK_SIZE);
    for (const c of sparse) {
      const m = members.get(c) ?? [];
      if (busy === null || m.some(([slot]) => busy[slot])) {
        r.busy += m.length;
        continue;
      }
      r.containers++;
      for (const [slot, loc] of m) {
        if (moving.has(slot)) continue; // crosses into a container also being emptied
        moving.add(slot);
        store.blocks.read(loc.container, fragmentSpans(loc) ? 2 : 1, buf, 0);
        moves.push({ slot, at: run.add(buf, loc.offset, loc.length), length: loc.length, codec: loc.codec });
      }
    }
    if (r.containers < 2) return { ...r, containers: 0 };
    placeFragments(store, edit, run, moves);
    r.fragments = moves.length;
    r.slotsAfter = metaNumber(store, 'container_slots');
    return r;
  });
  faultPoint('repack.after-commit');
  return report;
}
