/**
 * BlockDevice is what everything above image/ sees of an open image: the NBD
 * server exports one, the format writers read one, the importers write one.
 *
 * The interface is synchronous on purpose. A flush allocates slots, writes
 * them and commits the SQLite transaction as one synchronous step (a
 * better-sqlite3 transaction must never span an await), and page-cache reads
 * of 4 KiB are cheaper done inline than through libuv's thread pool.
 */

/**
 * What a byte range holds, as `qemu-img map` and NBD base:allocation see it:
 * - data: stored blocks;
 * - zero: reads as zeros because some layer says so (explicit ZERO entry);
 * - hole: no layer of the chain ever wrote it; reads as zeros.
 */
export type ExtentKind = 'data' | 'zero' | 'hole';

export interface Extent {
  offset: number;
  length: number;
  kind: ExtentKind;
  /** Depth of the layer that supplies the range: 0 is the image itself. Absent for holes. */
  depth?: number;
}

/** A run of a device's bytes, changed or not since the image a ChangeTracker compares with. */
export interface ChangeRun {
  offset: number;
  length: number;
  changed: boolean;
}

/**
 * Where a device's content may differ from a frozen image's (an NBD
 * `qemu:dirty-bitmap:` context). Unflushed writes count as changed.
 */
export interface ChangeTracker {
  /** Name of the frozen image compared with. */
  readonly sinceName: string;
  /** Runs tiling [offset, offset+length) in order, merged; at most `maxRuns`, then covering a prefix of it. */
  runs(offset: number, length: number, maxRuns: number): ChangeRun[];
}

export interface BlockDevice {
  /** Virtual size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Reads `length` bytes at `offset`; throws E_RANGE past the end. */
  read(offset: number, length: number): Buffer;
  /** Throws E_READONLY on a frozen image, E_RANGE past the end. */
  write(offset: number, data: Uint8Array): void;
  /** The range reads back as zeros afterwards; no data block is stored for it. */
  writeZeroes(offset: number, length: number): void;
  /** Like writeZeroes in strata (a discarded range reads zeros, never a parent's data). */
  discard(offset: number, length: number): void;
  /** Returns once every earlier write is durable (data synced, metadata committed). */
  flush(): void;
  /** Allocation status of [offset, offset+length), merged into maximal runs, in order. */
  extents(offset: number, length: number): Extent[];
  /**
   * For async callers (the NBD server), before a read or write of the range:
   * makes local what it needs that is still in a remote pack (a lazy
   * clone's blocks). null when nothing is; a rejected promise (E_IO) when a
   * block cannot be fetched, which fails that request only.
   */
  prepare?(offset: number, length: number, write: boolean): Promise<void> | null;
  /** Dirty bitmaps the NBD server offers for this device, by the frozen image each compares with. */
  readonly changeTrackers?: readonly ChangeTracker[];
  close(): void;
}

/** Fetches blocks still in a remote pack and makes them local (remote/store-side/lazy.ts's LazyFetcher). */
export interface RemoteBlockSource {
  ensure(slots: Iterable<number>): Promise<number>;
}

/** Appends `e` to `out`, merging it into the last extent when they touch and say the same thing. Empty extents are dropped. */
export function appendExtent<E extends Extent>(out: E[], e: E): void {
  if (e.length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.kind === e.kind && last.depth === e.depth && last.offset + last.length === e.offset) last.length += e.length;
  else out.push(e);
}
