/**
 * An open image: reads through its resolved chain, writes into its own map.
 *
 * Writes are held in memory (dirty blocks) until flush, or until they pass
 * the dirty limit; then one flush hashes them, places them through the
 * store's single dedup choke point, and commits the map in one transaction
 * (flush.ts: stage, place, apply, index). A crash loses unflushed writes and
 * nothing else.
 */
import { resolveImage } from './refs.js';
import { StrataError } from '../errors.js';
import { bytesText } from '../units.js';
import { appendExtent, type BlockDevice, type Extent, type ExtentKind, type RemoteBlockSource } from './device.js';
import { refreshLocations, remoteSlotsOf, inImage } from '../store/blocks/index.js';
import { leaseTx, moveLease, releaseLease, type Lease } from '../store/leases/index.js';
import { chainOf, getImageById, loadSegment, segClone, segCompact, segExpand, segGet, segOverlay, type Segment } from '../store/images/index.js';
import { snapshotInTx } from './lifecycle.js';
import { assertNoWriter, makeViewInTx } from './views.js';
import { IndexQueue, apply, place, stage } from './flush.js';
import type { CodecSpec } from '../store/blocks/index.js';
import { faultPoint, readTx } from '../store/core/index.js';
import type { Store, WriteTx } from '../store/core/index.js';
import {
  BLOCK_SIZE,
  INHERIT,
  SEGMENT_ENTRIES,
  ZERO,
  entrySlot,
  isFrozen,
  type ImageRecord,
  type MapEntry,
  type SegmentIndex,
  type SlotNumber,
} from '../store/core/index.js';
import { blocksIn, resolveFrozen } from './resolve.js';

export interface OpenOptions {
  /** true: open for writing, which needs a leaf; 'if-leaf': writable when it is a leaf, else read-only. */
  writable?: boolean | 'if-leaf';
  /** Flush by itself once this many bytes of writes are held (default 64 MiB). */
  dirtyLimit?: number;
  /** A writer's control socket, recorded in its lease: where other processes ask it for snapshots. */
  control?: string;
  /** Read-only: refuse a leaf another process writes (E_BUSY naming it, see views.ts) instead of reading it as it changes. */
  refuseWriter?: boolean;
}

const ARENA_BYTES = 1024 * 1024;
/** Own segments a writer keeps loaded (16 KiB each at most) before it drops those it has not changed. */
const OWN_CACHE_SEGMENTS = 1024;

const segOf = (b: number): SegmentIndex => Math.floor(b / SEGMENT_ENTRIES) as SegmentIndex;

export class Image implements BlockDevice {
  readonly readOnly: boolean;
  private rec: ImageRecord;
  private chain: ImageRecord[];
  private readonly dirtyLimit: number;
  private lease: Lease | null;
  /** Frozen images never change while open, so their resolved segments are shared through the store's cache. */
  private readonly stable: boolean;
  private closed = false;

  /** Own segments as this handle sees them (committed + unflushed zeroing). Leaves only. */
  private readonly own = new Map<number, Segment>();
  private readonly dirtySegs = new Set<number>();
  /** Unflushed data, one 4 KiB buffer per block. */
  private readonly dirtyData = new Map<number, Buffer>();
  /** Dedup index rows this writer owes for slots it committed (flush.ts). */
  private readonly index = new IndexQueue();
  /** Where small dirty writes are packed (dirtySpace). */
  private arena: Buffer | null = null;
  private arenaUsed = 0;
  /**
   * An import under a hidden name: flushes made because the dirty limit was
   * reached commit without waiting for their data to reach the device; an
   * explicit flush() syncs it all before its commit (placement.ts).
   */
  private readonly lazyData: boolean;
  /**
   * Set for imports into a compressing store: new blocks go in compressed. A
   * writable leaf keeps its blocks as they are (hot blocks rewritten often
   * pay no codec); compress them when frozen (relocate.ts).
   */
  private readonly compress: CodecSpec | undefined;
  /** Committed slots whose data may not be durable yet (lazyData only). */
  private unsyncedData = false;
  /** The leaf's own resolved segments; frozen images use the store's shared cache. */
  private readonly resolved = new Map<number, Segment>();
  private lastSeg = -1;
  private lastResolved: Segment = INHERIT;

  /** `rec` and `chain` must have been read in the transaction that took `lease` (see openImage). */
  constructor(
    private readonly store: Store,
    rec: ImageRecord,
    chain: ImageRecord[],
    opts: { writable: boolean; dirtyLimit?: number; lease: Lease | null; lazyData?: boolean; compress?: CodecSpec },
  ) {
    this.rec = rec;
    this.chain = chain;
    this.readOnly = !opts.writable;
    this.stable = isFrozen(rec);
    this.dirtyLimit = opts.dirtyLimit ?? 64 * 1024 * 1024;
    this.lease = opts.lease;
    this.lazyData = opts.lazyData ?? false;
    this.compress = opts.compress;
  }

  get name(): string {
    return this.rec.name;
  }
  get record(): ImageRecord {
    return this.rec;
  }
  get size(): number {
    return this.rec.virtualSize;
  }
  /** Bytes of writes held in memory, waiting for a flush. */
  get dirtyBytes(): number {
    return this.dirtyData.size * BLOCK_SIZE;
  }
  /** Chain depth: 1 for an image without parent. */
  get depth(): number {
    return this.chain.length;
  }

  // ---- resolution ---------------------------------------------------------

  private ownSeg(seg: number): Segment {
    let s = this.own.get(seg);
    if (s === undefined) {
      if (this.own.size >= OWN_CACHE_SEGMENTS && !this.readOnly) this.forgetCleanOwn();
      s = loadSegment(this.store, this.rec.id, seg as SegmentIndex);
      this.own.set(seg, s);
    }
    return s;
  }

  /**
   * Drops the own segments this handle has not changed since its last flush:
   * the store holds exactly them. Without it a server that walked a 1 TiB
   * leaf's map once (a backup reading its dirty bitmap) kept 16 KiB per
   * segment for good, over 1 GiB. Writers only: a read-only handle of a leaf
   * keeps what it first read, as the view it promised (another process may
   * have written since).
   */
  private forgetCleanOwn(): void {
    for (const seg of this.own.keys()) if (!this.dirtySegs.has(seg)) this.own.delete(seg);
  }

  /** The parent chain's resolved segment (holes where there is no parent). */
  private parentSeg(seg: number): Segment {
    return resolveFrozen(this.store, this.chain, 1, seg as SegmentIndex);
  }

  private resolvedSeg(seg: number): Segment {
    if (seg === this.lastSeg) return this.lastResolved;
    let r: Segment;
    if (this.stable) {
      r = resolveFrozen(this.store, this.chain, 0, seg as SegmentIndex);
    } else {
      // A leaf, even one opened read-only, may be written by another process: its own segments
      // are read as they are when first needed, and kept by this handle alone.
      const hit = this.resolved.get(seg);
      if (hit !== undefined) r = hit;
      else {
        r = segOverlay(this.ownSeg(seg), this.parentSeg(seg));
        if (this.resolved.size >= 4096) this.resolved.clear();
        this.resolved.set(seg, r);
      }
    }
    this.lastSeg = seg;
    this.lastResolved = r;
    return r;
  }

  private invalidate(seg: number): void {
    this.resolved.delete(seg);
    if (this.lastSeg === seg) this.lastSeg = -1;
  }

  private resolvedEntry(b: number): MapEntry {
    return segGet(this.resolvedSeg(segOf(b)), b % SEGMENT_ENTRIES);
  }

  // ---- what a comparison with another image needs (changes.ts) ---------------

  /** The chain this handle reads, nearest first: after a live snapshot, the new one. */
  get chainRecords(): readonly ImageRecord[] {
    return this.chain;
  }

  /** Segment `seg` resolved through the chain as this handle reads it, with unflushed zeroing (unflushed data is not in it: see unflushedBlock). */
  liveSegment(seg: number): Segment {
    this.checkOpen();
    return this.resolvedSeg(seg);
  }

  /** Segments where this handle holds writes its committed map does not show yet. */
  unflushedSegments(): Set<number> {
    const out = new Set<number>(this.dirtySegs);
    for (const b of this.dirtyData.keys()) out.add(segOf(b));
    return out;
  }

  /** Block `b` has unflushed data (which no map entry shows yet). */
  unflushedBlock(b: number): boolean {
    return this.dirtyData.has(b);
  }

  // ---- checks ----------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new StrataError('E_BAD_INPUT', `image ${this.name} is closed`);
  }

  private checkRange(offset: number, length: number): void {
    this.checkOpen();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new StrataError('E_BAD_INPUT', `invalid offset ${offset} or length ${length}`);
    }
    if (offset + length > this.size) {
      throw new StrataError('E_RANGE', `range ${offset}+${length} is beyond the end of image ${this.name} (${bytesText(this.size)})`, {
        offset,
        length,
        size: this.size,
      });
    }
  }

  private checkWritable(): void {
    if (this.readOnly) {
      const why = isFrozen(this.rec) ? `is frozen (${this.rec.kind})` : 'is open read-only';
      throw new StrataError('E_READONLY', `image ${this.name} ${why}`, { image: this.name });
    }
  }

  // ---- reads -----------------------------------------------------------------

  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    if (length === 0) return Buffer.alloc(0);
    const b0 = Math.floor(offset / BLOCK_SIZE);
    const b1 = Math.ceil((offset + length) / BLOCK_SIZE);
    const head = offset - b0 * BLOCK_SIZE;
    const out = Buffer.allocUnsafe((b1 - b0) * BLOCK_SIZE);
    this.readBlocks(b0, b1, out);
    return head === 0 && out.length === length ? out : out.subarray(head, head + length);
  }

  /**
   * Like read(), into the caller's buffer when `offset` is block-aligned and
   * `scratch` holds the whole blocks (reusing one buffer saves a fresh
   * allocation, and its page faults, per call). Returns the bytes read.
   */
  readInto(offset: number, length: number, scratch: Buffer): Buffer {
    this.checkRange(offset, length);
    const blocks = Math.ceil(length / BLOCK_SIZE);
    if (offset % BLOCK_SIZE !== 0 || scratch.length < blocks * BLOCK_SIZE) return this.read(offset, length);
    const b0 = offset / BLOCK_SIZE;
    this.readBlocks(b0, b0 + blocks, scratch);
    return scratch.subarray(0, length);
  }

  /** Where blocks still in a remote pack come from (set by serve); without it such a read is E_IO. */
  remoteBlocks: RemoteBlockSource | undefined;

  prepare(offset: number, length: number, write: boolean): Promise<void> | null {
    if (!this.remoteBlocks || length === 0) return null;
    let slots: number[];
    try {
      if (write) {
        // A write needs only the blocks it covers in part (it reads them to merge).
        const b0 = Math.floor(offset / BLOCK_SIZE);
        const b1 = Math.ceil((offset + length) / BLOCK_SIZE) - 1;
        slots = [];
        if (offset % BLOCK_SIZE !== 0) slots.push(...this.slotsIn(b0 * BLOCK_SIZE, BLOCK_SIZE));
        if ((offset + length) % BLOCK_SIZE !== 0 && (b1 !== b0 || offset % BLOCK_SIZE === 0)) slots.push(...this.slotsIn(b1 * BLOCK_SIZE, BLOCK_SIZE));
      } else slots = this.slotsIn(offset, length);
    } catch {
      return null; // a bad range: the request itself reports it
    }
    refreshLocations(this.store);
    const far = remoteSlotsOf(this.store, slots);
    if (far.length === 0) return null;
    return this.remoteBlocks.ensure(far).then(() => undefined);
  }

  /**
   * The slots a read of [offset, offset + length) would touch (blocks held
   * unflushed in memory excepted): for a lazy clone's reader, which makes
   * them local (remote/store-side/lazy.ts) before the synchronous read.
   */
  slotsIn(offset: number, length: number): number[] {
    this.checkRange(offset, length);
    const out: number[] = [];
    const b1 = Math.ceil((offset + length) / BLOCK_SIZE);
    for (let b = Math.floor(offset / BLOCK_SIZE); b < b1; b++) {
      if (this.dirtyData.size > 0 && this.dirtyData.has(b)) continue;
      const e = this.resolvedEntry(b);
      if (e >= 2) out.push(entrySlot(e));
    }
    return out;
  }

  /** Fills `out` with blocks [b0, b1), coalescing runs of consecutive slots into one read. */
  private readBlocks(b0: number, b1: number, out: Buffer): void {
    const dirty = this.dirtyData.size > 0;
    let b = b0;
    while (b < b1) {
      const at = (b - b0) * BLOCK_SIZE;
      const d = dirty ? this.dirtyData.get(b) : undefined;
      if (d) {
        d.copy(out, at);
        b++;
        continue;
      }
      const e = this.resolvedEntry(b);
      if (e < 2) {
        // A run of holes and zeros is one fill, not one per block.
        let z = 1;
        while (b + z < b1 && (!dirty || !this.dirtyData.has(b + z)) && this.resolvedEntry(b + z) < 2) z++;
        out.fill(0, at, at + z * BLOCK_SIZE);
        b += z;
        continue;
      }
      let n = 1;
      while (b + n < b1 && (!dirty || !this.dirtyData.has(b + n)) && this.resolvedEntry(b + n) === e + n) n++;
      this.readSlotsAt(b, entrySlot(e), n, out, at);
      b += n;
    }
  }

  /** store.read() of the run of `n` slots from `slot` that blocks from `b` name; a damaged block is named by this image and its byte offset. */
  private readSlotsAt(b: number, slot: SlotNumber, n: number, out: Buffer, at: number): void {
    try {
      this.store.read(slot, n, out, at);
    } catch (e) {
      throw inImage(e, this.name, slot, b * BLOCK_SIZE);
    }
  }

  // ---- writes ----------------------------------------------------------------

  /**
   * `owned`: the caller lends `data` (an import's read buffer) until the
   * image's next flush (dirtyBytes back to 0) and does not touch it meanwhile,
   * so whole blocks are kept without a copy.
   */
  write(offset: number, data: Uint8Array, owned = false): void {
    this.checkWritable();
    this.checkRange(offset, data.length);
    const end = offset + data.length;
    const fullStart = Math.ceil(offset / BLOCK_SIZE) * BLOCK_SIZE;
    // Whole blocks: one copy of the span, each block a view into it (no per-block allocation).
    const fullEnd = end === this.size ? Math.max(fullStart, end) : Math.floor(end / BLOCK_SIZE) * BLOCK_SIZE;
    if (fullEnd > fullStart) {
      let span: Buffer;
      if (owned && fullStart === offset && (fullEnd - fullStart) % BLOCK_SIZE === 0) {
        span = Buffer.from(data.buffer, data.byteOffset, fullEnd - fullStart);
      } else {
        const n = Math.ceil((fullEnd - fullStart) / BLOCK_SIZE);
        const again = n === 1 ? this.dirtyData.get(fullStart / BLOCK_SIZE) : undefined;
        // One block written again before a flush: in place, so a hot block costs no new memory.
        span = again ?? this.dirtySpace(n);
        span.set(data.subarray(fullStart - offset, fullEnd - offset));
        span.fill(0, fullEnd - fullStart);
      }
      const b0 = fullStart / BLOCK_SIZE;
      for (let k = 0; k * BLOCK_SIZE < span.length; k++) this.dirtyData.set(b0 + k, span.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
    }
    // Unaligned edges: read-modify-write the block.
    const edge = (from: number, to: number) => {
      if (to <= from) return;
      const b = Math.floor(from / BLOCK_SIZE);
      let buf = this.dirtyData.get(b);
      if (!buf) {
        buf = this.dirtySpace(1);
        this.readBlocks(b, b + 1, buf);
      }
      buf.set(data.subarray(from - offset, to - offset), from - b * BLOCK_SIZE);
      this.dirtyData.set(b, buf);
    };
    // The head runs to the first block boundary; the tail starts after the whole blocks,
    // or at that boundary when there are none (a write within or across one boundary).
    const headEnd = Math.min(end, fullStart);
    edge(offset, headEnd);
    edge(Math.max(fullEnd, headEnd), end);
    if (this.dirtyData.size * BLOCK_SIZE >= this.dirtyLimit) this.flushAndIndex('auto');
  }

  /**
   * Memory for `n` dirty blocks. Small writes (NBD's 4 KiB) are packed into
   * 1 MiB arenas: one allocation each rather than one per block, whose
   * per-buffer overhead nearly doubled a server's memory for the same dirty
   * bytes; a flush drops every arena at once. Blocks written in sequence stay
   * adjacent, so the flush writes them with one writev entry.
   */
  private dirtySpace(n: number): Buffer {
    const bytes = n * BLOCK_SIZE;
    if (bytes > ARENA_BYTES / 4) return Buffer.allocUnsafe(bytes);
    if (this.arena === null || this.arenaUsed + bytes > ARENA_BYTES) {
      this.arena = Buffer.allocUnsafe(ARENA_BYTES);
      this.arenaUsed = 0;
    }
    const out = this.arena.subarray(this.arenaUsed, this.arenaUsed + bytes);
    this.arenaUsed += bytes;
    return out;
  }

  writeZeroes(offset: number, length: number): void {
    this.checkWritable();
    this.checkRange(offset, length);
    const end = offset + length;
    const fb0 = Math.ceil(offset / BLOCK_SIZE);
    // A range reaching the image's end covers its last, partial block whole.
    const fb1 = end === this.size ? blocksIn(this.size) : Math.floor(end / BLOCK_SIZE);
    if (fb0 >= fb1) {
      this.writeZeroBytes(offset, length);
      return;
    }
    if (offset < fb0 * BLOCK_SIZE) this.writeZeroBytes(offset, fb0 * BLOCK_SIZE - offset);
    if (end > fb1 * BLOCK_SIZE) this.writeZeroBytes(fb1 * BLOCK_SIZE, end - fb1 * BLOCK_SIZE);
    this.zeroBlocks(fb0, fb1);
  }

  discard(offset: number, length: number): void {
    this.writeZeroes(offset, length);
  }

  /** The unaligned edges of a zeroed range (under two blocks): read-modify-written like any write. */
  private writeZeroBytes(offset: number, length: number): void {
    this.write(offset, Buffer.alloc(length));
  }

  /**
   * Blocks [b0, b1) read zero afterwards. The own map says ZERO only where a
   * parent has data to hide; elsewhere INHERIT, so nothing is stored. Only
   * the handle's own segments change; the flush's map edit counts what they
   * stop referencing.
   */
  private zeroBlocks(b0: number, b1: number): void {
    if (this.dirtyData.size > 0) {
      if (this.dirtyData.size < b1 - b0) {
        for (const b of [...this.dirtyData.keys()]) if (b >= b0 && b < b1) this.dirtyData.delete(b);
      } else for (let b = b0; b < b1; b++) this.dirtyData.delete(b);
    }
    for (let seg = segOf(b0); seg <= segOf(b1 - 1); seg++) {
      const first = Math.max(b0, seg * SEGMENT_ENTRIES) - seg * SEGMENT_ENTRIES;
      const last = Math.min(b1, (seg + 1) * SEGMENT_ENTRIES) - seg * SEGMENT_ENTRIES;
      const parent = this.parentSeg(seg);
      const old = this.ownSeg(seg);
      let next: Segment;
      if (first === 0 && last === SEGMENT_ENTRIES && typeof parent === 'number') {
        next = parent >= 2 ? ZERO : INHERIT;
      } else {
        const a = segClone(segExpand(old)) as Uint32Array;
        for (let i = first; i < last; i++) a[i] = segGet(parent, i) >= 2 ? ZERO : INHERIT;
        next = segCompact(a);
      }
      this.own.set(seg, next);
      this.dirtySegs.add(seg);
      this.invalidate(seg);
    }
  }

  // ---- flush -----------------------------------------------------------------

  flush(): void {
    this.flushAndIndex('explicit');
  }

  /** 'auto': the dirty limit was reached; 'final': closing, so every index row this handle owes goes in. */
  private flushAndIndex(mode: 'auto' | 'explicit' | 'final'): void {
    this.checkOpen();
    if (this.readOnly) return;
    const final = mode === 'final';
    // A lazy import still syncs once it owes a full batch of index rows, so they can join the index.
    const durable = !(this.lazyData && mode === 'auto') || this.index.full;
    if (this.dirtyData.size === 0 && this.dirtySegs.size === 0) {
      if (durable && this.unsyncedData) {
        this.store.blocks.sync();
        this.unsyncedData = false;
      }
      if (final) this.index.drain(this.store);
      return;
    }
    const staged = stage(this.store, this.dirtyData);
    const done = this.store.write((tx) => {
      const placed = place(this.store, staged, { recent: this.index.recent, durable, compress: this.compress });
      // Slots of earlier lazy flushes are made durable by this commit too.
      if (durable && this.unsyncedData) this.store.blocks.sync();
      const pairs: number[] = [];
      const view = { zeroed: this.dirtySegs, own: (seg: number) => this.ownSeg(seg), parent: (seg: number) => this.parentSeg(seg) };
      const applied = apply(tx, this.rec, staged, placed, view, pairs);
      const indexed = this.index.pass(tx, pairs, { durable, final });
      faultPoint('flush.before-commit');
      return { ...applied, pairs, indexed };
    });
    faultPoint('flush.after-commit');

    for (const [seg, s] of done.segs) {
      this.own.set(seg, s);
      this.invalidate(seg);
    }
    this.clearPending();
    this.unsyncedData = !durable;
    this.index.committed(done.pairs, done.indexed);
    this.rec = { ...this.rec, ownBlocks: done.ownBlocks, generation: this.rec.generation + 1 };
  }

  private clearPending(): void {
    this.dirtySegs.clear();
    this.dirtyData.clear();
    this.arena = null;
  }

  /** Forgets every write since the last flush, as a crash would. */
  dropUnflushed(): void {
    for (const seg of this.dirtySegs) {
      this.own.delete(seg);
      this.invalidate(seg);
    }
    this.clearPending();
  }

  // ---- allocation status -------------------------------------------------------

  extents(offset: number, length: number): Extent[] {
    this.checkRange(offset, length);
    const out: Extent[] = [];
    const push = (start: number, end: number, kind: ExtentKind) => {
      const s = Math.max(start, offset);
      appendExtent(out, { offset: s, length: Math.min(end, offset + length, this.size) - s, kind });
    };
    const kindOf = (e: number): ExtentKind => (e >= 2 ? 'data' : e === ZERO ? 'zero' : 'hole');
    const dirtySegs = new Set<number>();
    for (const b of this.dirtyData.keys()) dirtySegs.add(segOf(b));
    const b0 = Math.floor(offset / BLOCK_SIZE);
    const b1 = Math.ceil((offset + length) / BLOCK_SIZE);
    for (let seg = segOf(b0); b1 > b0 && seg <= segOf(b1 - 1); seg++) {
      const r = this.resolvedSeg(seg);
      const base = seg * SEGMENT_ENTRIES;
      if (typeof r === 'number' && !dirtySegs.has(seg)) {
        push(base * BLOCK_SIZE, (base + SEGMENT_ENTRIES) * BLOCK_SIZE, kindOf(r));
        continue;
      }
      const first = Math.max(b0, base);
      const last = Math.min(b1, base + SEGMENT_ENTRIES);
      for (let b = first; b < last; b++) {
        const kind = this.dirtyData.has(b) ? 'data' : kindOf(segGet(r, b - base));
        push(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE, kind);
      }
    }
    return out;
  }

  // ---- live snapshots ----------------------------------------------------------

  /**
   * Snapshots this writable leaf while it stays open: flushes, then in one
   * transaction freezes what was flushed as the snapshot, makes a new empty
   * leaf row under the same name, moves this handle's writer lease to it and
   * runs `also` (a clone's new leaves over the snapshot). Writes after this
   * call go to the new leaf; nothing waits longer than the flush.
   */
  snapshot<T = undefined>(snapName?: string, also?: (snapshot: ImageRecord, tx: WriteTx) => T): { snapshot: ImageRecord; leaf: ImageRecord; also: T | undefined } {
    this.checkWritable();
    this.checkOpen();
    if (this.lease === null) throw new StrataError('E_READONLY', `image ${this.name} is not held by a lease; snapshot it with snapshotImage`);
    this.flush();
    const lease = this.lease;
    const r = this.store.write((tx) => {
      const current = getImageById(tx, this.rec.id);
      const done = snapshotInTx(this.store, tx, current, snapName, { except: lease });
      moveLease(this.store, lease, done.leaf.id);
      const extra = also?.(done.snapshot, tx);
      faultPoint('snapshot.before-commit');
      return { ...done, also: extra, chain: chainOf(tx, done.leaf) };
    });
    faultPoint('snapshot.after-commit');
    this.rec = r.leaf;
    this.chain = r.chain;
    this.own.clear();
    this.resolved.clear();
    this.lastSeg = -1;
    return { snapshot: r.snapshot, leaf: r.leaf, also: r.also };
  }

  /**
   * A point-in-time view of this writable leaf while it stays open: flushes,
   * then copies the committed map into a hidden frozen image (views.ts), and
   * holds a read lease on it that the caller releases. Nothing waits longer
   * than the flush and the copy; this handle goes on as it was.
   */
  pointInTimeView(): { view: ImageRecord; lease: Lease } {
    this.checkWritable();
    this.checkOpen();
    this.flush();
    const r = leaseTx(this.store, (take, tx) => makeViewInTx(this.store, tx, getImageById(tx, this.rec.id), take), { durable: true });
    faultPoint('view.after-commit');
    return r;
  }

  /** Closes after flushing; with `discard`, unflushed writes are dropped instead. */
  close(opts: { discard?: boolean } = {}): void {
    if (this.closed) return;
    try {
      if (opts.discard) this.dropUnflushed();
      else this.flushAndIndex('final');
    } finally {
      this.closed = true;
      if (this.lease !== null) {
        const lease = this.lease;
        this.lease = null;
        releaseLease(this.store, lease);
      }
    }
  }
}

/**
 * Opens an image by name. The record is looked up, its kind checked and its
 * lease taken in one transaction, and the handle uses that record: a
 * snapshot, clone or flatten committed a moment earlier or later is seen
 * whole or not at all. A writable open needs a leaf and takes its writer
 * lease; a read-only open of a leaf pins what it may read (leases.ts), since
 * another process may be writing it.
 */
export function openImage(store: Store, name: string, opts: OpenOptions = {}): Image {
  const refuseFrozen = (rec: ImageRecord) =>
    new StrataError('E_READONLY', `image ${name} is frozen (${rec.kind}); clone it to get a writable leaf`, { image: name });
  if (store.readOnly) {
    const { rec, chain } = readTx(store, () => {
      const rec = resolveImage(store, name);
      return { rec, chain: chainOf(store, rec) };
    });
    if (opts.writable === true) throw isFrozen(rec) ? refuseFrozen(rec) : new StrataError('E_READONLY', `store ${store.dir} is open read-only`);
    return new Image(store, rec, chain, { writable: false, dirtyLimit: opts.dirtyLimit, lease: null });
  }
  // Two-process tests hold an opener here: everything before is the caller's, the lookup and the lease are one transaction.
  faultPoint('open.before-lease');
  const o = leaseTx(store, (take, tx) => {
    const rec = resolveImage(tx, name);
    const writable = opts.writable === 'if-leaf' ? !isFrozen(rec) : !!opts.writable;
    if (writable && isFrozen(rec)) throw refuseFrozen(rec);
    if (opts.refuseWriter && !writable && !isFrozen(rec)) assertNoWriter(store, rec);
    const lease = take(store, rec.id, rec.name, writable ? 'write' : 'read', { pin: !isFrozen(rec) && !writable, control: writable ? opts.control : undefined });
    return { rec, chain: chainOf(tx, rec), writable, lease };
  });
  return new Image(store, o.rec, o.chain, { writable: o.writable, dirtyLimit: opts.dirtyLimit, lease: o.lease });
}
