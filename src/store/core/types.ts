/**
 * Vocabulary of the store.
 *
 * - block: 4 KiB of an image's logical address space, numbered by BlockIndex.
 * - slot: 4 KiB of a data file, numbered by SlotNumber; a slot's number is
 *   its address (file = slot / SLOTS_PER_FILE). Slots are content-addressed
 *   through the block index and immutable while referenced.
 * - map entry: what one block of one image's own layer holds: INHERIT (ask
 *   the parent), ZERO, or a slot. Entries are stored as u32: 0, 1, slot + 2.
 * - segment: SEGMENT_ENTRIES consecutive map entries, one BLOB row, the way
 *   QCOW2 groups entries into L2 tables.
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type SlotNumber = Brand<number, 'SlotNumber'>;
export type BlockIndex = Brand<number, 'BlockIndex'>;
export type SegmentIndex = Brand<number, 'SegmentIndex'>;
export type ImageId = Brand<number, 'ImageId'>;
export type ImageName = Brand<string, 'ImageName'>;
/** A map entry as stored: INHERIT, ZERO, or slot + 2. */
export type MapEntry = Brand<number, 'MapEntry'>;

export const BLOCK_SIZE = 4096;
export const SEGMENT_ENTRIES = 4096;
/** 1 GiB data files: large enough that a store has few, small enough to punch and copy. */
export const SLOTS_PER_FILE = 262_144;
/**
 * u32 entries minus the two reserved values: 16 TiB of distinct data per store. One less
 * than that bound, so a container's location word (slot + 1) never equals the remote location's word (blocks/location.ts).
 */
export const MAX_SLOT = 0xffff_ffff - 3;
/** Virtual sizes are bounded so that every byte offset is an exact JS number. */
export const MAX_VIRTUAL_SIZE = 2 ** 53 - BLOCK_SIZE;
/**
 * The deepest chain strata takes from elsewhere: a qcow2 backing chain, a
 * remote manifest's layers. Each layer becomes an image, so a longer chain
 * is work and images without end, never a real image (QEMU's own chains
 * stay far below).
 */
export const MAX_CHAIN_DEPTH = 256;

export const INHERIT = 0 as MapEntry;
export const ZERO = 1 as MapEntry;

export const slotEntry = (s: SlotNumber): MapEntry => (s + 2) as MapEntry;
export const entrySlot = (e: MapEntry): SlotNumber => (e - 2) as SlotNumber;
export const isSlotEntry = (e: number): boolean => e >= 2;

export type ImageKind = 'base' | 'layer' | 'leaf';

export interface ImageRecord {
  id: ImageId;
  name: ImageName;
  kind: ImageKind;
  parentId: ImageId | null;
  virtualSize: number;
  createdAt: number;
  labels: Record<string, string>;
  source: Record<string, unknown> | null;
  /** Blocks whose own map entry is a slot: this layer's allocated bytes / 4096. */
  ownBlocks: number;
  /** Bumped whenever the image's map changes, so cached resolutions are never stale. */
  generation: number;
  /** The highest N of the LEAF.snapN snapshots this leaf has had: numbers only grow. */
  snapSeq: number;
  /** When a snapshot took this frozen image (ms since the epoch); null for images no snapshot made. */
  snapshotAt: number | null;
}

/**
 * Told how far a long operation has come: `done` of `total` bytes (of the
 * image, file or slots it works through). Called at safe points only, so it
 * may throw to stop the operation, which is then undone like on any error
 * (a transaction rolls back, an import drops its hidden image, an export
 * removes its output file). The CLI draws progress and stops on Ctrl-C here.
 */
export type OnProgress = (done: number, total: number) => void;

export const isFrozen = (r: Pick<ImageRecord, 'kind'>): boolean => r.kind !== 'leaf';
