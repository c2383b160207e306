/**
 * A map edit: what one write transaction changes in image maps, applied by
 * the store at commit() (LevelDB's VersionEdit and LogAndApply).
 *
 * The rule the store rests on lives here and nowhere else: a slot's refcount
 * is the number of map entries naming it, and an image's own-block count is
 * the number of its own entries naming a slot. Callers say only what entries
 * become; the edit reads what they were, and from the difference derives the
 * refcount deltas (applied with what placement stored: fresh, packed or
 * remote slots) and each image's own-block count.
 */
import { SEGMENT_ENTRIES, INHERIT, type ImageId, type ImageRecord, type MapEntry, type OnProgress, type SegmentIndex, type SlotNumber } from '../core/types.js';
import type { BlockHash } from '../core/hash.js';
import { prepared } from '../core/statements.js';
import { sqlOf, type WriteTx } from '../core/tx.js';
import type { RemotePlace } from '../blocks/remote-locs.js';
import { addRef, applyRefDeltas, type Packing, type RefDeltas } from '../slots/refcounts.js';
import { updateImage, type ImagePatch } from './catalog.js';
import { copySegments, dropSegments, loadSegment, saveSegment, segmentsOf } from './maps.js';
import { segClone, segCompact, segExpand, type Segment } from './segment.js';

/** The changes to one image's own map. */
export interface MapChanges {
  /** Block `block`'s own entry becomes `entry`. */
  set(block: number, entry: MapEntry): void;
  /** Own segment `seg` becomes `s` (INHERIT: the segment has no row). */
  setSegment(seg: SegmentIndex, s: Segment): void;
  /** Every own entry becomes INHERIT: the image reads its parent's view, or holes. */
  dropAll(): void;
  /** The own map becomes a copy of `source`'s own map (a point-in-time view of it). */
  copyOf(source: ImageId): void;
}

/** What placement stored for the blocks an edit's entries name. */
export interface Placed {
  /** Slots allocated in this transaction, with their hash: their refcount starts here, and one no entry names is freed. */
  fresh: ReadonlyMap<SlotNumber, BlockHash>;
  /** Which of `fresh` were stored compressed, and where. */
  packing?: Packing;
  /** Which of `fresh` are still in a remote pack (a lazy clone's layers): nothing was written for them. */
  remote?: ReadonlyMap<SlotNumber, RemotePlace>;
}

export interface CommitOptions {
  placed?: Placed;
  /**
   * Where the dedup index rows of fresh slots go: 'now' (the default) adds
   * them in this transaction; an array collects them (hash, slot, ...) for
   * the caller to add later in one sorted batch.
   */
  index?: 'now' | number[];
  /** Counts the slots updated, as 4 KiB each; a throw from it rolls the transaction back. */
  onProgress?: OnProgress;
  /** Other fields of the edited image's row that change with its map (parent, kind, size, source). */
  row?: ImagePatch;
}

export interface MapEdit extends MapChanges {
  /** The changes of another image in the same commit (commit's leaf; rm's many images), so a slot they share is updated once. */
  of(image: Pick<ImageRecord, 'id'>): MapChanges;
  /**
   * Writes what is still staged, applies the refcount deltas and writes each
   * edited image's own-block count (every edited image's generation goes up
   * by one). Returns the edited image's own-block count. Once only.
   */
  commit(opts?: CommitOptions): { ownBlocks: number };
}

/** An edit of `image`'s map (and, through of(), of others') in the write transaction `tx`. */
export function editMap(tx: WriteTx, image: Pick<ImageRecord, 'id'>): MapEdit {
  return new Edit(tx, image.id);
}

/**
 * The difference between two versions of one segment: the refcount deltas
 * it makes, into `deltas`, and the change in own blocks, returned.
 */
function diffSegment(old: Segment, next: Segment, deltas: RefDeltas): number {
  if (typeof old === 'number' && typeof next === 'number') {
    if (old === next) return 0;
    let own = 0;
    if (old >= 2) {
      addRef(deltas, old - 2, -SEGMENT_ENTRIES);
      own -= SEGMENT_ENTRIES;
    }
    if (next >= 2) {
      addRef(deltas, next - 2, SEGMENT_ENTRIES);
      own += SEGMENT_ENTRIES;
    }
    return own;
  }
  const a = segExpand(old);
  const b = segExpand(next);
  let own = 0;
  for (let i = 0; i < SEGMENT_ENTRIES; i++) {
    const o = a[i];
    const n = b[i];
    if (o === n) continue;
    if (o >= 2) {
      addRef(deltas, o - 2, -1);
      own--;
    }
    if (n >= 2) {
      addRef(deltas, n - 2, 1);
      own++;
    }
  }
  return own;
}

/** Adds `by` per slot entry of `s` to `deltas`; returns the number of slot entries. */
function countEntries(s: Segment, by: number, deltas: RefDeltas): number {
  if (typeof s === 'number') {
    if (s < 2) return 0;
    addRef(deltas, s - 2, by * SEGMENT_ENTRIES);
    return SEGMENT_ENTRIES;
  }
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] >= 2) {
      addRef(deltas, s[i] - 2, by);
      n++;
    }
  }
  return n;
}

class ImageChanges implements MapChanges {
  /** Segments changed entry by entry, written at commit. */
  private readonly staged = new Map<number, Uint32Array>();
  /** Change in own blocks so far. */
  own = 0;

  constructor(
    private readonly tx: WriteTx,
    readonly id: ImageId,
    private readonly deltas: RefDeltas,
    /** Writes what the edit holds staged for an image, so that reading its rows sees this edit's changes. */
    private readonly settle: (id: ImageId) => void,
  ) {}

  set(block: number, entry: MapEntry): void {
    const seg = Math.floor(block / SEGMENT_ENTRIES);
    let a = this.staged.get(seg);
    if (!a) this.staged.set(seg, (a = segClone(segExpand(loadSegment(this.tx, this.id, seg as SegmentIndex))) as Uint32Array));
    a[block % SEGMENT_ENTRIES] = entry;
  }

  setSegment(seg: SegmentIndex, s: Segment): void {
    this.staged.delete(seg);
    this.write(seg, segCompact(s));
  }

  dropAll(): void {
    this.staged.clear();
    for (const [, s] of segmentsOf(this.tx, this.id)) this.own -= countEntries(s, -1, this.deltas);
    dropSegments(this.tx, this.id);
  }

  copyOf(source: ImageId): void {
    if (source === this.id) return;
    this.settle(source);
    this.dropAll();
    for (const [, s] of segmentsOf(this.tx, source)) this.own += countEntries(s, 1, this.deltas);
    copySegments(this.tx, source, this.id);
  }

  /** Writes the staged segments. */
  flush(): void {
    for (const [seg, a] of this.staged) this.write(seg as SegmentIndex, segCompact(a));
    this.staged.clear();
  }

  private write(seg: SegmentIndex, next: Segment): void {
    const old = loadSegment(this.tx, this.id, seg);
    this.own += diffSegment(old, next, this.deltas);
    if (old !== INHERIT || next !== INHERIT) saveSegment(this.tx, this.id, seg, next);
  }
}

class Edit implements MapEdit {
  private readonly deltas: RefDeltas = new Map();
  private readonly images = new Map<ImageId, ImageChanges>();
  private readonly root: ImageChanges;
  private done = false;

  constructor(
    private readonly tx: WriteTx,
    id: ImageId,
  ) {
    this.root = this.changesOf(id);
  }

  private changesOf(id: ImageId): ImageChanges {
    let c = this.images.get(id);
    if (!c) this.images.set(id, (c = new ImageChanges(this.tx, id, this.deltas, (other) => this.images.get(other)?.flush())));
    return c;
  }

  of(image: Pick<ImageRecord, 'id'>): MapChanges {
    return this.changesOf(image.id);
  }

  set(block: number, entry: MapEntry): void {
    this.root.set(block, entry);
  }
  setSegment(seg: SegmentIndex, s: Segment): void {
    this.root.setSegment(seg, s);
  }
  dropAll(): void {
    this.root.dropAll();
  }
  copyOf(source: ImageId): void {
    this.root.copyOf(source);
  }

  commit(opts: CommitOptions = {}): { ownBlocks: number } {
    if (this.done) throw new Error('a map edit is committed once');
    this.done = true;
    const db = sqlOf(this.tx);
    for (const c of this.images.values()) c.flush();
    const p = opts.placed;
    applyRefDeltas(this.tx, this.deltas, p?.fresh as Map<SlotNumber, BlockHash> | undefined, {
      index: opts.index,
      packing: p?.packing,
      remote: p?.remote as Map<SlotNumber, RemotePlace> | undefined,
      onProgress: opts.onProgress,
    });
    let ownBlocks = 0;
    for (const c of this.images.values()) {
      const n = prepared(db, 'UPDATE images SET own_blocks = own_blocks + ? WHERE id = ? RETURNING own_blocks').pluck().get(c.own, c.id) as number;
      updateImage(this.tx, c.id, c === this.root ? (opts.row ?? {}) : {});
      if (c === this.root) ownBlocks = n;
    }
    return { ownBlocks };
  }
}
