/**
 * tables.ts: the L1/L2 cluster mapping (docs/interop/qcow2.txt, "Cluster
 * mapping", "Extended L2 Entries"). Refcount table bounds and refcount_order
 * are validated with the header (header.ts); reading never needs refcounts.
 *
 * L1 is loaded whole (bounded by what the virtual size needs, at most 32 MiB);
 * L2 tables are read lazily through a small LRU cache bounded in bytes.
 */
import { inputError } from '../../errors.js';
import { ImageFile, hex } from './file.js';
import { MAX_L1_ENTRIES, Qcow2Header, checkTable, l1EntriesNeeded, l2Entries } from './header.js';

const TWO32 = 2 ** 32;
/** Bits 9..55 of an entry's high word: the low 24 bits of the high word are offset bits 32..55. */
const HI_OFFSET_MASK = 0x00ffffff;
const LO_OFFSET_MASK = 0xfffffe00;

/** What one guest cluster maps to. */
export type ClusterKind = 'hole' | 'zero' | 'data' | 'compressed' | 'sub';

export interface ClusterMap {
  kind: ClusterKind;
  /** data/sub: host cluster offset; compressed: host byte offset of the compressed data. */
  host: number;
  /** compressed: bytes to read (whole 512-byte sectors from the offset's sector, minus the offset into it). */
  csize: number;
  /** sub: allocation and zero bitmaps, bit i for subcluster i. */
  alloc: number;
  zero: number;
}

/** Loads an L1 table, keeping only the entries the virtual size needs, as L2 table offsets (0 = none). */
export function loadL1(file: ImageFile, h: Qcow2Header, offset: number, l1Size: number, virtualSize: number, what: string): Float64Array {
  const need = l1EntriesNeeded(virtualSize, h.clusterBits, h.extendedL2);
  if (need > MAX_L1_ENTRIES) throw inputError(`${file.path}: ${what}: virtual size ${virtualSize} needs an L1 table over 32 MiB`);
  if (l1Size < need) throw inputError(`${file.path}: ${what}: l1_size ${l1Size} too small for virtual size ${virtualSize} (needs ${need})`);
  if (l1Size > MAX_L1_ENTRIES) throw inputError(`${file.path}: ${what}: l1_size ${l1Size} is absurdly large`);
  const l1 = new Float64Array(need);
  if (need === 0) return l1;
  checkTable(file, h, what, offset, l1Size * 8);
  const buf = file.readAt(offset, need * 8, what);
  for (let i = 0; i < need; i++) {
    const hi = buf.readUInt32BE(i * 8) & HI_OFFSET_MASK;
    const lo = buf.readUInt32BE(i * 8 + 4) & LO_OFFSET_MASK;
    const l2 = hi * TWO32 + (lo >>> 0);
    if (l2 === 0) continue;
    if (l2 % h.clusterSize !== 0) throw inputError(`${file.path}: ${what} entry ${i}: L2 table offset ${hex(l2)} is not cluster aligned`);
    if (l2 < h.clusterSize) throw inputError(`${file.path}: ${what} entry ${i}: L2 table offset ${hex(l2)} overlaps the header cluster`);
    if (l2 + h.clusterSize > file.size) {
      throw inputError(`${file.path}: ${what} entry ${i}: L2 table at ${hex(l2)} runs past end of file (${file.size} bytes)`);
    }
    l1[i] = l2;
  }
  return l1;
}

/** LRU cache of L2 tables keyed by host offset, bounded to `maxBytes`. */
export class L2Cache {
  private readonly tables = new Map<number, Buffer>();
  private readonly capacity: number;
  constructor(
    private readonly file: ImageFile,
    private readonly clusterSize: number,
    maxBytes = 32 * 1024 * 1024,
  ) {
    this.capacity = Math.max(4, Math.min(1024, Math.floor(maxBytes / clusterSize)));
  }

  get(offset: number): Buffer {
    const hit = this.tables.get(offset);
    if (hit) {
      this.tables.delete(offset);
      this.tables.set(offset, hit);
      return hit;
    }
    const t = this.file.readAt(offset, this.clusterSize, 'L2 table');
    if (this.tables.size >= this.capacity) this.tables.delete(this.tables.keys().next().value as number);
    this.tables.set(offset, t);
    return t;
  }
}

/**
 * The mapping of guest cluster `ci`, decoded from its L2 entry. Validates the
 * entry (alignment, header overlap, bitmap consistency) and fills `out`.
 */
export class Mapper {
  readonly l2PerTable: number;
  private readonly entryBytes: number;
  private readonly csizeShift: number;
  private readonly csizeMask: number;

  constructor(
    private readonly file: ImageFile,
    private readonly h: Qcow2Header,
    private readonly l1: Float64Array,
    private readonly cache: L2Cache,
  ) {
    this.l2PerTable = l2Entries(h.clusterBits, h.extendedL2);
    this.entryBytes = h.extendedL2 ? 16 : 8;
    this.csizeShift = 62 - (h.clusterBits - 8);
    this.csizeMask = 2 ** (h.clusterBits - 8) - 1;
  }

  /** True when the whole L2 range containing guest cluster `ci` is unallocated (fast skip). */
  l2Missing(ci: number): boolean {
    return this.l1[Math.floor(ci / this.l2PerTable)] === 0;
  }

  map(ci: number, out: ClusterMap): ClusterMap {
    const l1i = Math.floor(ci / this.l2PerTable);
    const l2off = this.l1[l1i];
    out.host = 0;
    out.csize = 0;
    out.alloc = 0;
    out.zero = 0;
    if (!l2off) {
      out.kind = 'hole';
      return out;
    }
    const t = this.cache.get(l2off);
    const e = (ci - l1i * this.l2PerTable) * this.entryBytes;
    const hiRaw = t.readUInt32BE(e);
    const loRaw = t.readUInt32BE(e + 4);
    const p = this.file.path;
    if (hiRaw & 0x40000000) {
      // Compressed: offset in bits 0..x-1, additional sector count in x..61.
      const shift = this.csizeShift;
      const hi62 = hiRaw & 0x3fffffff;
      // shift = 62 - (cluster_bits - 8) is 49..57, so the sector count lives in the high word.
      const host = (hi62 % 2 ** (shift - 32)) * TWO32 + (loRaw >>> 0);
      const nb = ((hi62 >>> (shift - 32)) & this.csizeMask) + 1;
      const csize = nb * 512 - (host % 512);
      if (host < this.h.clusterSize) throw inputError(`${p}: compressed cluster ${ci} at ${hex(host)} overlaps the header cluster`);
      if (host >= this.file.size) {
        throw inputError(`${p}: compressed cluster ${ci} at ${hex(host)} (${csize} bytes) runs past end of file (${this.file.size} bytes)`);
      }
      out.kind = 'compressed';
      out.host = host;
      out.csize = csize;
      return out;
    }
    const host = (hiRaw & HI_OFFSET_MASK) * TWO32 + ((loRaw & LO_OFFSET_MASK) >>> 0);
    if (host % this.h.clusterSize !== 0) throw inputError(`${p}: guest cluster ${ci}: data offset ${hex(host)} is not cluster aligned`);
    if (this.h.extendedL2) {
      const bm = e + 8;
      const alloc = t.readUInt32BE(bm + 4); // bits 0..31 live in the low word
      const zero = t.readUInt32BE(bm);
      if ((alloc & zero) !== 0) throw inputError(`${p}: guest cluster ${ci}: subclusters both allocated and zero (bitmap ${hex(alloc)}/${hex(zero)})`);
      if (host === 0 && alloc !== 0) throw inputError(`${p}: guest cluster ${ci}: allocated subclusters without a host offset`);
      if (alloc === 0) {
        out.kind = zero === 0 ? 'hole' : zero === 0xffffffff ? 'zero' : 'sub';
        out.zero = zero;
        return out;
      }
      this.checkData(ci, host);
      out.kind = alloc === 0xffffffff ? 'data' : 'sub';
      out.host = host;
      out.alloc = alloc;
      out.zero = zero;
      return out;
    }
    if (this.h.version === 3 && (loRaw & 1)) {
      out.kind = 'zero';
      return out;
    }
    if (host === 0) {
      out.kind = 'hole';
      return out;
    }
    this.checkData(ci, host);
    out.kind = 'data';
    out.host = host;
    return out;
  }

  private checkData(ci: number, host: number): void {
    if (host < this.h.clusterSize) throw inputError(`${this.file.path}: guest cluster ${ci}: data offset ${hex(host)} overlaps the header cluster`);
    if (host >= this.file.size) {
      throw inputError(`${this.file.path}: guest cluster ${ci}: data cluster at ${hex(host)} lies past end of file (${this.file.size} bytes)`);
    }
  }
}

export function newClusterMap(): ClusterMap {
  return { kind: 'hole', host: 0, csize: 0, alloc: 0, zero: 0 };
}
