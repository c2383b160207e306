/**
 * The optional native addon (native/strata_native.c) and its portable
 * fallbacks. The store uses it for two things Node's fs cannot do:
 *
 * - punchHole: return a freed slot's 4 KiB to the file system
 *   (fallocate PUNCH_HOLE). Fallback: `false`, "not reclaimed"; the slot
 *   stays allocated on disk and is reused by the allocator as usual.
 * - dataExtents: list the runs of a sparse file that hold data
 *   (lseek SEEK_DATA / SEEK_HOLE), so an import skips holes without reading
 *   them. Fallback: one run covering the whole file; the importer then finds
 *   zeros by reading them, which is slower but gives the same result.
 *
 * The addon is loaded once, on first use, from `native/build/Release` at the
 * package root, found relative to this file so it works from both
 * `dist/store/blocks/native.js` and `src/store/blocks/native.ts` (tsx, vitest).
 * - ofdLocks: open-file-description byte-range locks (fcntl F_OFD_SETLK),
 *   which back image leases. Fallback: none; leases then fall back to
 *   comparing the holder's pid and start time, which cannot see a holder in
 *   another PID namespace (a container sharing the store volume).
 *
 * - watchInterrupt: SIGINT as a flag that synchronous work polls at safe
 *   points (a JS signal handler would run only after the work is done).
 *   Fallback: none; Ctrl-C then ends the process at once, as it would
 *   without any handler.
 *
 * `STRATA_NO_NATIVE=1` forces the fallback, for tests and for ruling the
 * addon out when debugging.
 *
 * Errors other than "not supported" are thrown as the addon raises them:
 * Node-style errno errors (`code` 'EBADF', `errno`, `syscall`), like fs.*Sync.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What the compiled addon exports. */
interface Addon {
  punchHole(fd: number, offset: number, length: number): boolean;
  /** Next offset >= `offset` that holds data, or -1 if none before EOF. */
  seekData(fd: number, offset: number): number;
  /** Next offset >= `offset` that is a hole (EOF counts), or -1 if `offset` >= EOF. */
  seekHole(fd: number, offset: number): number;
  lockRange(fd: number, offset: number, length: number, exclusive: boolean): boolean;
  rangeLocked(fd: number, offset: number, length: number): boolean;
  interruptArm?(): boolean;
  interruptDisarm?(): void;
  interrupted?(): boolean;
  startWriteback?(fd: number, offset: number, length: number): boolean;
  tuneMalloc?(): boolean;
  writeAt?(fd: number, buffers: Uint8Array[], offsets: number[]): void;
  compressBlocks?(codec: number, level: number, src: Uint8Array, count: number, out: Uint8Array, sizes: Int32Array, limit: number): void;
  compressBlocksAsync?(codec: number, level: number, src: Uint8Array, count: number, out: Uint8Array, sizes: Int32Array, limit: number, done: (err: Error | null) => void): void;
  decompressBlock?(codec: number, src: Uint8Array, offset: number, length: number, out: Uint8Array, at: number): number;
  readFragment?(fd: number, offset: number, length: number, codec: number, out: Uint8Array, at: number): number;
  verifyBlocks?(buf: Uint8Array, at: number, count: number, expected: Float64Array, expAt: number): number;
  readBlocks?(fd: number, offset: number, count: number, buf: Uint8Array, at: number, expected: Float64Array, expAt: number): number;
  features: { punchHole: boolean; seekData: boolean; ofdLock?: boolean; interrupt?: boolean; writeback?: boolean; zstd?: boolean; lz4?: boolean };
}

export interface NativeStatus {
  mode: 'native' | 'fallback';
  /** Why the fallback is in use; absent in native mode. One line. */
  reason?: string;
}

export interface DataRun {
  offset: number;
  length: number;
}

/**
 * Candidate addon paths, in order: src/store/blocks/ and dist/store/blocks/ sit three levels below the root, the
 * bundled CLI (dist/cli/strata.js) two.
 */
const CANDIDATES = ['../../../native/build/Release/strata_native.node', '../../../native/build/Debug/strata_native.node', '../../native/build/Release/strata_native.node', '../../native/build/Debug/strata_native.node'];

let loaded: { addon: Addon | null; status: NativeStatus } | undefined;

function load(): { addon: Addon | null; status: NativeStatus } {
  if (loaded) return loaded;
  if (process.env.STRATA_NO_NATIVE === '1') {
    loaded = { addon: null, status: { mode: 'fallback', reason: 'disabled by STRATA_NO_NATIVE=1' } };
    return loaded;
  }
  const paths = CANDIDATES.map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const path = paths.find((p) => existsSync(p));
  if (!path) {
    loaded = { addon: null, status: { mode: 'fallback', reason: 'addon not built (no native/build/Release/strata_native.node)' } };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as Addon;
    loaded = { addon, status: { mode: 'native' } };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    loaded = { addon: null, status: { mode: 'fallback', reason: `addon failed to load: ${msg}` } };
  }
  return loaded;
}

export function nativeStatus(): NativeStatus {
  return { ...load().status };
}

/**
 * Deallocates [offset, offset + length) keeping the file size: the range reads
 * as zeros afterwards. Returns false when nothing was reclaimed (no addon, or
 * the file system cannot punch holes); the caller must then not rely on the
 * range reading zeros.
 */
export function punchHole(fd: number, offset: number, length: number): boolean {
  const { addon } = load();
  if (!addon || !addon.features.punchHole) return false;
  return addon.punchHole(fd, offset, length);
}

/**
 * Starts writing a range's dirty pages to the device without waiting
 * (sync_file_range WRITE). Durability still needs fdatasync; this only lets
 * the device work while the caller goes on. false where unsupported (an old
 * addon, no addon): nothing happened, and nothing is wrong.
 */
export function startWriteback(fd: number, offset: number, length: number): boolean {
  const { addon } = load();
  if (!addon?.startWriteback || !addon.features.writeback) return false;
  return addon.startWriteback(fd, offset, length);
}

/**
 * Writes each buffer at its own offset with one call into the addon; false
 * (nothing written) where the addon lacks it, and the caller writes them one
 * by one. Throws fs-style errors (code ENOSPC, EIO...).
 */
export function writeAt(fd: number, buffers: Uint8Array[], offsets: number[]): boolean {
  const { addon } = load();
  if (!addon?.writeAt) return false;
  addon.writeAt(fd, buffers, offsets);
  return true;
}

/** The addon's block codecs (see codecs.ts); null without the addon or with one built before them. */
export interface NativeCodecs {
  zstd: boolean;
  lz4: boolean;
  compress(codec: number, level: number, src: Uint8Array, count: number, out: Uint8Array, sizes: Int32Array, limit: number): void;
  /** compress on a libuv worker, done() once the buffers are filled; null where the addon lacks it. */
  compressAsync: ((codec: number, level: number, src: Uint8Array, count: number, out: Uint8Array, sizes: Int32Array, limit: number, done: (err: Error | null) => void) => void) | null;
  decompress(codec: number, src: Uint8Array, offset: number, length: number, out: Uint8Array, at: number): number;
  /** pread of a fragment and its decoding in one call; null where the addon lacks it. */
  readFragment: ((fd: number, offset: number, length: number, codec: number, out: Uint8Array, at: number) => number) | null;
}

let codecs: NativeCodecs | null | undefined;

export function nativeCodecs(): NativeCodecs | null {
  if (codecs !== undefined) return codecs;
  const { addon } = load();
  if (!addon?.compressBlocks || !addon.decompressBlock) return (codecs = null);
  return (codecs = {
    zstd: addon.features.zstd === true,
    lz4: addon.features.lz4 === true,
    compress: addon.compressBlocks.bind(addon),
    compressAsync: addon.compressBlocksAsync ? addon.compressBlocksAsync.bind(addon) : null,
    decompress: addon.decompressBlock.bind(addon),
    readFragment: addon.readFragment ? addon.readFragment.bind(addon) : null,
  });
}

/**
 * XXH64 of 4 KiB blocks in C, compared with the hashes recorded for their
 * slots (verify.ts): the index of the first block that differs, or -1. null
 * without the addon or with one built before it; the caller then hashes in
 * JS (xxhash-wasm), block by block.
 */
export interface NativeBlockHash {
  verify(buf: Uint8Array, at: number, count: number, expected: Float64Array, expAt: number): number;
  /** pread of `count` blocks at `offset` and verify() of them, in one call; throws errno errors, and code E_SHORT when the file ends first. */
  read(fd: number, offset: number, count: number, buf: Uint8Array, at: number, expected: Float64Array, expAt: number): number;
}

let blockHash: NativeBlockHash | null | undefined;

export function nativeBlockHash(): NativeBlockHash | null {
  if (blockHash !== undefined) return blockHash;
  const { addon } = load();
  if (!addon?.verifyBlocks || !addon.readBlocks) return (blockHash = null);
  return (blockHash = { verify: addon.verifyBlocks.bind(addon), read: addon.readBlocks.bind(addon) });
}

/**
 * Makes the C heap give freed large buffers back to the kernel (a fixed
 * mmap threshold; see native/strata_native.c). For long-running servers;
 * false where unsupported.
 */
export function tuneMalloc(): boolean {
  const { addon } = load();
  return addon?.tuneMalloc?.() ?? false;
}

/**
 * The runs of [0, size) that hold data, in order, non-overlapping, clipped to
 * `size`. Everything outside them reads as zeros. Runs follow the file
 * system's allocation, so they are aligned to its block size (except at
 * `size`). Without the addon, or where the file system cannot tell, one run
 * covers the whole range.
 */
export function dataExtents(fd: number, size: number): DataRun[] {
  if (size <= 0) return [];
  const whole = [{ offset: 0, length: size }];
  const { addon } = load();
  if (!addon || !addon.features.seekData) return whole;
  const runs: DataRun[] = [];
  let pos = 0;
  try {
    while (pos < size) {
      const start = addon.seekData(fd, pos);
      if (start < 0 || start >= size) break;
      let end = addon.seekHole(fd, start);
      if (end < 0 || end > size) end = size;
      if (end <= start) break; // cannot happen on a sane file system; never loop forever
      runs.push({ offset: start, length: end - start });
      pos = end;
    }
  } catch (e) {
    // A file system or file type without SEEK_DATA support: treat it all as data.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ESPIPE') return whole;
    throw e;
  }
  return runs;
}

/** Byte-range locks on an open file description; null where the addon or the platform has none. */
export interface OfdLocks {
  /** Takes a lock on [offset, offset + length); false when another open file holds a conflicting one. */
  lock(fd: number, offset: number, length: number, exclusive: boolean): boolean;
  /** Whether any other open file description holds a lock overlapping the range. */
  locked(fd: number, offset: number, length: number): boolean;
}

export function ofdLocks(): OfdLocks | null {
  const { addon } = load();
  if (!addon || !addon.features.ofdLock || typeof addon.lockRange !== 'function') return null;
  return {
    lock: (fd, offset, length, exclusive) => addon.lockRange(fd, offset, length, exclusive),
    locked: (fd, offset, length) => addon.rangeLocked(fd, offset, length),
  };
}

/** SIGINT caught as a flag, from watchInterrupt() until stop(). */
export interface InterruptWatch {
  /** Whether SIGINT came since the watch began. A second SIGINT exits the process at once (status 130). */
  interrupted(): boolean;
  /** Puts back the SIGINT handling of before. */
  stop(): void;
}

/** Starts catching SIGINT as a flag; null where the addon (or the platform) cannot. */
export function watchInterrupt(): InterruptWatch | null {
  const { addon } = load();
  if (!addon || !addon.features.interrupt || typeof addon.interruptArm !== 'function') return null;
  if (!addon.interruptArm()) return null;
  return {
    interrupted: () => addon.interrupted!(),
    stop: () => addon.interruptDisarm!(),
  };
}
