/**
 * A block's location: where the bytes of the block a slot names live
 * (locations.ts reads them from there). The slot's number is the block's
 * identity; its location is a separate fact that compress, repack, evict
 * and fetch change without any map changing.
 *
 * A location is a Location value everywhere but in the slot_locs table,
 * where it is two u32 words per slot. encodeLocation and decodeLocation
 * (and the row helpers built on them) are the only code that knows those
 * words. Code that acts on a location does it in an exhaustive
 * `switch (loc.kind)` ending in unreachable(loc), so a new kind of location
 * fails to compile wherever it is not handled.
 *
 * The words, as stored since schema 4 (never change them: stores on disk hold them):
 *   own        [0, 0]
 *   container  [0xffffffff, 0]
 *   remote     [0xfffffffe, 0]
 *   packed     [container + 1, codec << 28 | offset << 14 | length]
 * A chunk with no location but own has no row (an absent row reads as all own).
 */
import { BLOCK_SIZE, MAX_SLOT, type SlotNumber } from '../core/types.js';

/** In its own slot of the data files: the default, and the place of every uncompressed block. */
export interface OwnLocation {
  readonly kind: 'own';
}
/**
 * Compressed: a fragment packed with others into a run of container slots,
 * starting `offset` bytes into `container` and running on into the next
 * container slot when it does not fit (fragmentSpans). The block's own slot
 * is only its number: its place in the data files is a hole.
 */
export interface PackedLocation {
  readonly kind: 'packed';
  readonly container: SlotNumber;
  readonly offset: number;
  readonly length: number;
  /** CODEC_IDS (codecs.ts). */
  readonly codec: number;
}
/** Not a block: the slot holds other slots' packed fragments; its refcount counts them. */
export interface ContainerLocation {
  readonly kind: 'container';
}
/**
 * Still in a remote pack, not fetched yet (a lazy clone's chain,
 * remote/store-side/lazy.ts, or evicted): its place (remote, pack, offset, length,
 * codec, sha256) is its row in remote_locs (remote-locs.ts). Its own slot is
 * a hole until a fetch writes it there and the location becomes own.
 */
export interface RemoteLocation {
  readonly kind: 'remote';
}

export type Location = OwnLocation | PackedLocation | ContainerLocation | RemoteLocation;

/** The kinds that carry no fields are one shared value each: decoding them allocates nothing. */
export const OWN: OwnLocation = Object.freeze({ kind: 'own' });
export const CONTAINER: ContainerLocation = Object.freeze({ kind: 'container' });
export const REMOTE: RemoteLocation = Object.freeze({ kind: 'remote' });

/** The default of a `switch (loc.kind)`: compiles only when every kind has its case. */
export function unreachable(x: never): never {
  throw new Error(`unhandled case ${JSON.stringify(x)}`);
}

const CONTAINER_W0 = 0xffffffff;
const REMOTE_W0 = 0xfffffffe;
const FIELD_MAX = 0x3fff; // offset and length: 14 bits each
const CODEC_MAX = 0xf;

export function packedLocation(container: SlotNumber, offset: number, length: number, codec: number): PackedLocation {
  return { kind: 'packed', container, offset, length, codec };
}

/** Whether a fragment runs on from its container into the next slot, also a container. */
export const fragmentSpans = (p: PackedLocation): boolean => p.offset + p.length > BLOCK_SIZE;

/** The container slots a fragment lies in: one, or two when it runs on into the next. */
export const containersOf = (p: PackedLocation): SlotNumber[] => (fragmentSpans(p) ? [p.container, (p.container + 1) as SlotNumber] : [p.container]);

/** A location's two slot_locs words. Throws on a packed location the words cannot hold (a bug, never input). */
export function encodeLocation(loc: Location): readonly [number, number] {
  switch (loc.kind) {
    case 'own':
      return [0, 0];
    case 'container':
      return [CONTAINER_W0, 0];
    case 'remote':
      return [REMOTE_W0, 0];
    case 'packed': {
      const { container, offset, length, codec } = loc;
      if (!(Number.isInteger(container) && container >= 0 && container < MAX_SLOT && offset >= 0 && offset <= FIELD_MAX && length >= 0 && length <= FIELD_MAX && codec >= 0 && codec <= CODEC_MAX)) {
        throw new Error(`packed location out of range: ${JSON.stringify(loc)}`);
      }
      return [container + 1, ((codec << 28) | (offset << 14) | length) >>> 0];
    }
    default:
      return unreachable(loc);
  }
}

/**
 * The location two slot_locs words hold. It does not judge a fragment's
 * fields (check does, and names what is wrong); every pair of words is some
 * location.
 */
export function decodeLocation(w0: number, w1: number): Location {
  if (w0 === 0) return OWN;
  if (w0 === CONTAINER_W0) return CONTAINER;
  if (w0 === REMOTE_W0) return REMOTE;
  return { kind: 'packed', container: (w0 - 1) as SlotNumber, offset: (w1 >>> 14) & FIELD_MAX, length: w1 & FIELD_MAX, codec: w1 >>> 28 };
}

// ---- rows of slot_locs: words 2i and 2i + 1 are slot i's -------------------

/** Words per slot in a slot_locs row. */
export const LOCATION_WORDS = 2;

/** Slot i's location in a row of slot_locs; null is an absent row (every slot own). */
export function locationAt(row: Uint32Array | null, i: number): Location {
  return row === null ? OWN : decodeLocation(row[2 * i], row[2 * i + 1]);
}

/** Sets slot i's location in a row; returns the one it replaced, or null when it was already this one (nothing changed). */
export function putLocation(row: Uint32Array, i: number, loc: Location): Location | null {
  const [w0, w1] = encodeLocation(loc);
  if (row[2 * i] === w0 && row[2 * i + 1] === w1) return null;
  const old = decodeLocation(row[2 * i], row[2 * i + 1]);
  row[2 * i] = w0;
  row[2 * i + 1] = w1;
  return old;
}

/** Whether a row holds only own locations (it need not be stored). */
export const allOwn = (row: Uint32Array): boolean => row.every((w) => w === 0);

// ---- questions asked of a location, each answered for every kind ------------

/**
 * Whether the block's bytes are in this store to read (in its own place or
 * as a fragment): what dedup, pull and a lazy clone may compare against,
 * and what evict and compress may move. A remote block has nothing here yet;
 * a container is not a block.
 */
export function bytesHere(loc: Location): boolean {
  switch (loc.kind) {
    case 'own':
    case 'packed':
      return true;
    case 'remote':
    case 'container':
      return false;
    default:
      return unreachable(loc);
  }
}

/** Whether the block is in its own place in the data files (the read path reads runs of these with one call). */
export function inOwnPlace(loc: Location): boolean {
  switch (loc.kind) {
    case 'own':
      return true;
    case 'packed':
    case 'remote':
    case 'container':
      return false;
    default:
      return unreachable(loc);
  }
}

/** Whether the block waits in a remote pack (its place is in remote_locs). */
export function inRemotePack(loc: Location): boolean {
  switch (loc.kind) {
    case 'remote':
      return true;
    case 'own':
    case 'packed':
    case 'container':
      return false;
    default:
      return unreachable(loc);
  }
}

/**
 * Whether the slot's own place in the data files holds nothing it needs:
 * after a move out of it (compressed, evicted), its old bytes can be punched
 * once no reader may still read them (moved-places.ts).
 */
export function ownPlaceUnused(loc: Location): boolean {
  switch (loc.kind) {
    case 'packed':
    case 'remote':
      return true;
    case 'own':
    case 'container':
      return false;
    default:
      return unreachable(loc);
  }
}

/** The bytes of a packed block's fragment; 0 for every other kind. */
export function fragmentBytes(loc: Location): number {
  switch (loc.kind) {
    case 'packed':
      return loc.length;
    case 'own':
    case 'remote':
    case 'container':
      return 0;
    default:
      return unreachable(loc);
  }
}

/** meta's counters of locations (packed_blocks, packed_bytes, container_slots, remote_blocks), each location's share. */
export interface LocationTally {
  packedBlocks: number;
  packedBytes: number;
  containers: number;
  remote: number;
}

/** Adds `loc`'s share to `t`, `by` times (-1 takes it away). */
export function tallyLocation(t: LocationTally, loc: Location, by: number): void {
  switch (loc.kind) {
    case 'own':
      return;
    case 'packed':
      t.packedBlocks += by;
      t.packedBytes += by * loc.length;
      return;
    case 'container':
      t.containers += by;
      return;
    case 'remote':
      t.remote += by;
      return;
    default:
      unreachable(loc);
  }
}
