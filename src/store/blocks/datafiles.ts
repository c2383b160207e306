/**
 * Block slots on local disk: data/NNNNNN.dat, each SLOTS_PER_FILE fixed 4 KiB
 * slots. This is the only module that touches data-file descriptors; tests
 * and STRATA_FAULT wrap it in FaultyBlocks (faulty-blocks.ts), and every
 * BlockBackend passes test/store/backend-contract.test.ts. BlockBackend is
 * the seam between the store and its slots' bytes, not a place for remote
 * storage: a block kept in a bucket is a location (location.ts's remote,
 * remote-locs.ts), fetched into its own slot here before it is read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StrataError, storeCorrupt } from '../../errors.js';
import { BLOCK_SIZE, SLOTS_PER_FILE, type SlotNumber } from '../core/types.js';
import { nativeBlockHash, nativeCodecs, punchHole, startWriteback, writeAt } from './native.js';

export interface BlockBackend {
  /** Reads `count` consecutive slots into `into` at byte `at`. */
  read(first: SlotNumber, count: number, into: Uint8Array, at: number): void;
  /**
   * read(), and each block i checked against expected[i] (53-bit XXH64) as
   * it is read: one call into the addon per data file. Returns the index of
   * the first block that differs, or -1; null where the addon cannot (the
   * caller then reads and hashes itself).
   */
  readChecked(first: SlotNumber, count: number, into: Uint8Array, at: number, expected: Float64Array): number | null;
  /**
   * Reads `length` bytes from byte `offset` of slot `slot` on (possibly into
   * the next slot) and decodes them with `codec` into into[at, at + 4096), in
   * one call where the platform allows. Returns the bytes decoded, or -1
   * when it cannot (no addon, the codec not built in, a file boundary in
   * between): the caller then reads the slots and decodes itself.
   */
  readFragment(slot: SlotNumber, offset: number, length: number, codec: number, into: Uint8Array, at: number): number;
  /** Writes consecutive slots from `first`; each buffer holds a whole number of slots. Never called on a referenced slot. */
  write(first: SlotNumber, buffers: readonly Uint8Array[]): void;
  /** Writes single blocks to scattered slots (slots[i] gets blocks[i]), in as few calls as the platform allows. */
  writeScattered(slots: readonly SlotNumber[], blocks: readonly Uint8Array[]): void;
  /** Makes every write so far durable. */
  sync(): void;
  /**
   * Lets the device start on the writes made since the last call, without
   * waiting and without making anything durable (only sync() does): the
   * disk works while the writer prepares its next batch.
   */
  startWriteback(): void;
  /** Returns free slots' space to the file system; false where it cannot. */
  release(first: SlotNumber, count: number): boolean;
  /** Cuts the data files down to hold exactly `slots` slots. */
  truncate(slots: number): void;
  /** Bytes the data files occupy on disk (allocated, not apparent). */
  diskUsage(): { apparent: number; allocated: number; files: number };
  close(): void;
}

export const dataFileName = (fileNo: number): string => `${String(fileNo).padStart(6, '0')}.dat`;

/** Maps an fs error on a data file to a typed error naming the file. */
export function ioError(e: unknown, file: string, what: string): StrataError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'EFBIG') {
    return new StrataError('E_NO_SPACE', `no space left to ${what} ${file}`, { file }, { cause: e });
  }
  return new StrataError('E_IO', `cannot ${what} ${file}: ${err.code ?? err.message}`, { file }, { cause: e });
}

/** fsync of a directory: the names made in it (files, directories) survive a power cut. */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    throw ioError(e, dir, 'sync');
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** writev in IOV_MAX-sized pieces; a short write resumes with what is left. */
function writeAll(fd: number, fileNo: number, buffers: Uint8Array[], position: number): void {
  let pos = position;
  for (let i = 0; i < buffers.length; i += 1024) {
    let bufs = buffers.slice(i, i + 1024);
    let left = bufs.reduce((n, b) => n + b.length, 0);
    while (left > 0) {
      let put: number;
      try {
        put = bufs.length === 1 ? fs.writeSync(fd, bufs[0], 0, bufs[0].length, pos) : fs.writevSync(fd, bufs, pos);
      } catch (e) {
        throw ioError(e, dataFileName(fileNo), 'write');
      }
      left -= put;
      pos += put;
      while (put > 0 && bufs.length > 0) {
        if (put >= bufs[0].length) {
          put -= bufs[0].length;
          bufs = bufs.slice(1);
        } else {
          bufs = [bufs[0].subarray(put), ...bufs.slice(1)];
          put = 0;
        }
      }
    }
  }
}

export function openLocalBlocks(dataDir: string, readOnly: boolean, durable = true): BlockBackend {
  const fds = new Map<number, number>();
  const unsynced = new Set<number>();
  /** Byte ranges per data file written since the last startWriteback(). */
  const written = new Map<number, [number, number]>();
  /** Bytes [from, to) of a data file were written: it needs a sync, and its range a writeback. */
  const noteWritten = (fileNo: number, from: number, to: number) => {
    unsynced.add(fileNo);
    const r = written.get(fileNo);
    if (!r) written.set(fileNo, [from, to]);
    else {
      r[0] = Math.min(r[0], from);
      r[1] = Math.max(r[1], to);
    }
  };

  /** A data file was created since the last sync: its directory entry must be made durable too. */
  let dirDirty = false;

  const fileFor = (fileNo: number): number => {
    let fd = fds.get(fileNo);
    if (fd === undefined) {
      const p = path.join(dataDir, dataFileName(fileNo));
      try {
        fd = fs.openSync(p, readOnly ? 'r' : 'r+');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, p, 'open');
        if (readOnly) throw storeCorrupt(`data file ${p} is missing`, { file: p });
        try {
          fd = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
        } catch (e2) {
          throw ioError(e2, p, 'create');
        }
        dirDirty = true;
      }
      fds.set(fileNo, fd);
    }
    return fd;
  };

  /** fsync of data/ itself, so a new file's name survives a power cut with the slots in it. */
  const syncDir = () => {
    syncDirectory(dataDir);
    dirDirty = false;
  };

  /** Splits a run of slots at data-file boundaries. */
  const eachFileRun = (first: number, count: number, fn: (fileNo: number, slotInFile: number, n: number, done: number) => void) => {
    let done = 0;
    while (done < count) {
      const s = first + done;
      const fileNo = Math.floor(s / SLOTS_PER_FILE);
      const inFile = s % SLOTS_PER_FILE;
      const n = Math.min(count - done, SLOTS_PER_FILE - inFile);
      fn(fileNo, inFile, n, done);
      done += n;
    }
  };

  const read = (first: number, count: number, into: Uint8Array, at: number): void => {
    eachFileRun(first, count, (fileNo, inFile, n, done) => {
      const fd = fileFor(fileNo);
      const want = n * BLOCK_SIZE;
      let got = 0;
      while (got < want) {
        let r: number;
        try {
          r = fs.readSync(fd, into, at + done * BLOCK_SIZE + got, want - got, inFile * BLOCK_SIZE + got);
        } catch (e) {
          throw ioError(e, dataFileName(fileNo), 'read');
        }
        if (r === 0) {
          throw storeCorrupt(`data file ${dataFileName(fileNo)} is shorter than slot ${fileNo * SLOTS_PER_FILE + inFile + Math.floor(got / BLOCK_SIZE)}`, {
            file: dataFileName(fileNo),
          });
        }
        got += r;
      }
    });
  };

  return {
    read,

    readChecked(first, count, into, at, expected) {
      const native = nativeBlockHash();
      if (!native) return null;
      let bad = -1;
      eachFileRun(first, count, (fileNo, inFile, n, done) => {
        if (bad >= 0) return;
        let r: number;
        try {
          r = native.read(fileFor(fileNo), inFile * BLOCK_SIZE, n, into, at + done * BLOCK_SIZE, expected, done);
        } catch (e) {
          // A file that ends early: the plain read names the first slot it lacks.
          if ((e as NodeJS.ErrnoException).code === 'E_SHORT') read(first + done, n, into, at + done * BLOCK_SIZE);
          throw ioError(e, dataFileName(fileNo), 'read');
        }
        if (r >= 0) bad = done + r;
      });
      return bad;
    },

    readFragment(slot, offset, length, codec, into, at) {
      const read = nativeCodecs()?.readFragment;
      if (!read) return -1;
      const fileNo = Math.floor(slot / SLOTS_PER_FILE);
      const inFile = (slot % SLOTS_PER_FILE) * BLOCK_SIZE + offset;
      if (inFile + length > SLOTS_PER_FILE * BLOCK_SIZE) return -1;
      try {
        return read(fileFor(fileNo), inFile, length, codec, into, at);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTSUP') return -1;
        if (code === 'E_CORRUPT') throw storeCorrupt(`a fragment at slot ${slot} in ${dataFileName(fileNo)} does not decode: ${(e as Error).message}`, { slot });
        throw ioError(e, dataFileName(fileNo), 'read');
      }
    },

    write(first, buffers) {
      // Cut the buffers at data-file boundaries, then writev each file's share.
      let slot: number = first;
      let pending: Uint8Array[] = [];
      let pendingStart = slot;
      const flushPending = () => {
        if (pending.length === 0) return;
        const fileNo = Math.floor(pendingStart / SLOTS_PER_FILE);
        const at = (pendingStart % SLOTS_PER_FILE) * BLOCK_SIZE;
        writeAll(fileFor(fileNo), fileNo, pending, at);
        noteWritten(fileNo, at, at + (slot - pendingStart) * BLOCK_SIZE);
        pending = [];
      };
      for (let buf of buffers) {
        while (buf.length > 0) {
          if (pending.length > 0 && slot % SLOTS_PER_FILE === 0) flushPending();
          if (pending.length === 0) pendingStart = slot;
          const room = (SLOTS_PER_FILE - (slot % SLOTS_PER_FILE)) * BLOCK_SIZE;
          const part = buf.length <= room ? buf : buf.subarray(0, room);
          pending.push(part);
          slot += part.length / BLOCK_SIZE;
          buf = buf.subarray(part.length);
        }
      }
      flushPending();
    },

    writeScattered(slots, blocks) {
      const byFile = new Map<number, { bufs: Uint8Array[]; offsets: number[] }>();
      for (let i = 0; i < slots.length; i++) {
        const fileNo = Math.floor(slots[i] / SLOTS_PER_FILE);
        let f = byFile.get(fileNo);
        if (!f) byFile.set(fileNo, (f = { bufs: [], offsets: [] }));
        f.bufs.push(blocks[i]);
        f.offsets.push((slots[i] % SLOTS_PER_FILE) * BLOCK_SIZE);
      }
      for (const [fileNo, f] of byFile) {
        const fd = fileFor(fileNo);
        let native: boolean;
        try {
          native = writeAt(fd, f.bufs, f.offsets);
        } catch (e) {
          throw ioError(e, dataFileName(fileNo), 'write');
        }
        if (!native) for (let i = 0; i < f.bufs.length; i++) writeAll(fd, fileNo, [f.bufs[i]], f.offsets[i]);
        for (const at of f.offsets) noteWritten(fileNo, at, at + BLOCK_SIZE);
      }
    },

    startWriteback() {
      if (durable) for (const [fileNo, [from, to]] of written) startWriteback(fileFor(fileNo), from, to - from);
      written.clear();
    },

    sync() {
      written.clear();
      if (!durable) {
        unsynced.clear();
        dirDirty = false;
      }
      for (const fileNo of unsynced) {
        try {
          fs.fdatasyncSync(fileFor(fileNo));
        } catch (e) {
          throw ioError(e, dataFileName(fileNo), 'sync');
        }
      }
      unsynced.clear();
      if (dirDirty) syncDir();
    },

    release(first, count) {
      let all = true;
      eachFileRun(first, count, (fileNo, inFile, n) => {
        if (!punchHole(fileFor(fileNo), inFile * BLOCK_SIZE, n * BLOCK_SIZE)) all = false;
      });
      return all;
    },

    truncate(slots) {
      // Cut, never unlink: another process may hold any of these files open, and its descriptor
      // must keep naming the file that later slots are written to (see gc.ts).
      const lastFile = slots === 0 ? -1 : Math.floor((slots - 1) / SLOTS_PER_FILE);
      for (const name of fs.readdirSync(dataDir)) {
        const m = /^(\d{6})\.dat$/.exec(name);
        if (!m) continue;
        const fileNo = Number(m[1]);
        const keep = fileNo > lastFile ? 0 : fileNo === lastFile ? (slots - lastFile * SLOTS_PER_FILE) * BLOCK_SIZE : Infinity;
        const p = path.join(dataDir, name);
        if (fs.statSync(p).size > keep) fs.truncateSync(p, keep);
      }
    },

    diskUsage() {
      let apparent = 0;
      let allocated = 0;
      let files = 0;
      if (!fs.existsSync(dataDir)) return { apparent, allocated, files };
      for (const name of fs.readdirSync(dataDir)) {
        if (!/^\d{6}\.dat$/.test(name)) continue;
        const st = fs.statSync(path.join(dataDir, name));
        apparent += st.size;
        allocated += st.blocks * 512;
        files++;
      }
      return { apparent, allocated, files };
    },

    close() {
      for (const fd of fds.values()) fs.closeSync(fd);
      fds.clear();
    },
  };
}
