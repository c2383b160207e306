/**
 * reader.ts: opening a qcow2 file read-only and reading guest data, plus the
 * info helper built on the header parser (the backing chain is backing.ts).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StrataError, badInput, inputError } from '../../errors.js';
import { appendExtent, type Extent, type ExtentKind } from '../../image/device.js';
import { decompressCluster } from './compress.js';
import { ImageFile, hex } from './file.js';
import { Qcow2Header, isQcow2Magic, parseHeader } from './header.js';
import { findSnapshot, parseSnapshots, Qcow2Snapshot } from './snapshots.js';
import { ClusterMap, L2Cache, Mapper, loadL1, newClusterMap } from './tables.js';

export interface Qcow2Info {
  version: 2 | 3;
  virtualSize: number;
  clusterSize: number;
  backingFile?: string;
  backingFormat?: string;
  dirty: boolean;
  corruptBit: boolean;
  compressionType: 'deflate' | 'zstd';
  extendedL2: boolean;
  refcountBits: number;
  snapshots: { id: string; name: string; virtualSize: number; date: Date; vmClock?: number }[];
}

/** Guest data of one qcow2 layer. `read` and `extents` throw E_RANGE outside [0, size). */
export interface Qcow2Reader {
  readonly info: Qcow2Info;
  readonly size: number;
  read(offset: number, length: number): Buffer;
  extents(offset: number, length: number): Extent[];
  close(): void;
}

/** Magic check only; false for anything unreadable. */
export function isQcow2File(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && isQcow2Magic(b);
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

function toInfo(h: Qcow2Header, snaps: Qcow2Snapshot[]): Qcow2Info {
  const info: Qcow2Info = {
    version: h.version,
    virtualSize: h.size,
    clusterSize: h.clusterSize,
    dirty: h.dirty,
    corruptBit: h.corruptBit,
    compressionType: h.compressionType,
    extendedL2: h.extendedL2,
    refcountBits: 2 ** h.refcountOrder,
    snapshots: snaps.map((s) => ({ id: s.id, name: s.name, virtualSize: s.virtualSize, date: s.date, vmClock: s.vmClock })),
  };
  if (h.backingFile !== undefined) info.backingFile = h.backingFile;
  if (h.backingFormat !== undefined) info.backingFormat = h.backingFormat;
  return info;
}

function withFile<T>(path: string, fn: (f: ImageFile) => T): T {
  const f = new ImageFile(path);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}

/** Header, features and snapshot list. Reports (does not refuse) the dirty and corrupt bits. */
export function readQcow2Info(path: string): Qcow2Info {
  return withFile(path, (f) => {
    const h = parseHeader(f);
    return toInfo(h, parseSnapshots(f, h));
  });
}

/**
 * Opens a qcow2 file read-only. `opts.snapshot` (id, else name) reads that
 * internal snapshot's L1 table and virtual size instead of the active ones.
 * Unallocated ranges read as zeros and show as 'hole' extents: layering a
 * backing file underneath is the caller's job (see backingChain).
 * Throws E_NOT_FOUND (no file), E_BAD_INPUT (not qcow2, unknown snapshot),
 * E_UNSUPPORTED (encryption, external data file, unknown incompatible bits),
 * E_BAD_FILE (malformed, or the corrupt bit set). A dirty image is read anyway.
 */
export function openQcow2(path: string, opts: { snapshot?: string } = {}): Qcow2Reader {
  const file = new ImageFile(path);
  try {
    const h = parseHeader(file);
    if (h.corruptBit) {
      throw inputError(`${path}: image is marked corrupt (incompatible bit 1); repair it with qemu-img check -r all first`);
    }
    const snaps = parseSnapshots(file, h);
    let l1Offset = h.l1TableOffset;
    let l1Size = h.l1Size;
    let size = h.size;
    let what = 'L1 table';
    if (opts.snapshot !== undefined) {
      const s = findSnapshot(snaps, opts.snapshot);
      if (!s) throw badInput(`${path}: no snapshot with id or name ${JSON.stringify(opts.snapshot)}`, { snapshot: opts.snapshot });
      l1Offset = s.l1TableOffset;
      l1Size = s.l1Size;
      size = s.virtualSize;
      what = `L1 table of snapshot ${JSON.stringify(s.name)}`;
    }
    const l1 = loadL1(file, h, l1Offset, l1Size, size, what);
    return new Reader(file, h, toInfo(h, snaps), size, l1);
  } catch (e) {
    file.close();
    throw e;
  }
}

class Reader implements Qcow2Reader {
  private readonly mapper: Mapper;
  private readonly m: ClusterMap = newClusterMap();
  private readonly cs: number;
  private readonly subSize: number;
  /** One decompressed cluster, keyed by host offset: sequential reads of a compressed cluster inflate it once. */
  private lastCompressed = -1;
  private lastInflated: Buffer | null = null;
  private closed = false;

  constructor(
    private readonly file: ImageFile,
    private readonly h: Qcow2Header,
    readonly info: Qcow2Info,
    readonly size: number,
    l1: Float64Array,
  ) {
    this.cs = h.clusterSize;
    this.subSize = h.extendedL2 ? h.clusterSize / 32 : h.clusterSize;
    this.mapper = new Mapper(file, h, l1, new L2Cache(file, h.clusterSize));
  }

  private checkRange(offset: number, length: number): void {
    if (this.closed) throw new StrataError('E_BAD_INPUT', `${this.file.path}: reader is closed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new StrataError('E_RANGE', `${this.file.path}: range ${offset}+${length} is outside the virtual size ${this.size}`, { offset, length, size: this.size });
    }
  }

  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    // Buffer.alloc (calloc) rather than allocUnsafe + fill: large zeroed buffers come straight from the
    // kernel, so hole and zero ranges are never touched (measured 3-10x faster on sparse images).
    const out = Buffer.alloc(length);
    const cs = this.cs;
    const end = offset + length;
    // Reads of host bytes contiguous in both the file and `out` are coalesced into one pread.
    let pFile = 0;
    let pOut = 0;
    let pLen = 0;
    const flush = () => {
      if (pLen) this.file.readInto(out, pOut, pLen, pFile, 'data cluster');
      pLen = 0;
    };
    const queue = (fileOff: number, outOff: number, len: number) => {
      if (fileOff + len > this.file.size) {
        throw inputError(`${this.file.path}: data at ${hex(fileOff)} (${len} bytes) runs past end of file (${this.file.size} bytes)`);
      }
      if (pLen && pFile + pLen === fileOff && pOut + pLen === outOff && pLen < 64 * 1024 * 1024) {
        pLen += len;
        return;
      }
      flush();
      pFile = fileOff;
      pOut = outOff;
      pLen = len;
    };
    let pos = offset;
    while (pos < end) {
      const ci = Math.floor(pos / cs);
      const inC = pos - ci * cs;
      const n = Math.min(cs - inC, end - pos);
      const outOff = pos - offset;
      const m = this.mapper.map(ci, this.m);
      switch (m.kind) {
        case 'hole':
        case 'zero':
          break; // already zero
        case 'data':
          queue(m.host + inC, outOff, n);
          break;
        case 'compressed': {
          const c = this.inflate(ci, m);
          c.copy(out, outOff, inC, inC + n);
          break;
        }
        case 'sub': {
          const ss = this.subSize;
          for (let s = Math.floor(inC / ss); s * ss < inC + n; s++) {
            const a = Math.max(inC, s * ss);
            const b = Math.min(inC + n, (s + 1) * ss);
            if ((m.alloc >>> s) & 1) queue(m.host + a, outOff + (a - inC), b - a);
          }
          break;
        }
      }
      pos += n;
    }
    flush();
    return out;
  }

  private inflate(ci: number, m: ClusterMap): Buffer {
    if (this.lastCompressed === m.host && this.lastInflated) return this.lastInflated;
    const what = `${this.file.path}: compressed cluster ${ci} at ${hex(m.host)}`;
    // The last sector of the last compressed cluster may be short of EOF: qemu does not pad it.
    const avail = this.file.size - m.host;
    if (m.csize > avail && m.csize - avail >= 512) {
      throw inputError(`${what}: compressed length ${m.csize} runs past end of file (${this.file.size} bytes)`);
    }
    const data = this.file.readAt(m.host, Math.min(m.csize, avail), 'compressed cluster');
    const c = decompressCluster(this.h.compressionType, data, this.cs, what);
    this.lastCompressed = m.host;
    this.lastInflated = c;
    return c;
  }

  extents(offset: number, length: number): Extent[] {
    this.checkRange(offset, length);
    const out: Extent[] = [];
    const push = (start: number, len: number, kind: ExtentKind) =>
      appendExtent(out, kind === 'hole' ? { offset: start, length: len, kind } : { offset: start, length: len, kind, depth: 0 });
    const cs = this.cs;
    const end = offset + length;
    const perL2 = this.mapper.l2PerTable * cs;
    let pos = offset;
    while (pos < end) {
      const ci = Math.floor(pos / cs);
      if (this.mapper.l2Missing(ci)) {
        // A whole L2 range is unallocated: skip it in one step.
        const next = Math.min(end, (Math.floor(pos / perL2) + 1) * perL2);
        push(pos, next - pos, 'hole');
        pos = next;
        continue;
      }
      const inC = pos - ci * cs;
      const n = Math.min(cs - inC, end - pos);
      const m = this.mapper.map(ci, this.m);
      if (m.kind === 'sub') {
        const ss = this.subSize;
        for (let s = Math.floor(inC / ss); s * ss < inC + n; s++) {
          const a = Math.max(inC, s * ss);
          const b = Math.min(inC + n, (s + 1) * ss);
          const kind: ExtentKind = (m.alloc >>> s) & 1 ? 'data' : (m.zero >>> s) & 1 ? 'zero' : 'hole';
          push(pos + (a - inC), b - a, kind);
        }
      } else {
        push(pos, n, m.kind === 'compressed' ? 'data' : m.kind);
      }
      pos += n;
    }
    return out;
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.file.close();
    }
  }
}
