/**
 * writer.ts: streaming qcow2 v3 export (refcount_bits 16, no snapshots).
 *
 * File layout, in write order:
 *   cluster 0            header, extensions, backing file name (written last)
 *   clusters 1..L        L1 table (written last but one, once every L2 is placed)
 *   then, per L2 range   that range's data clusters (plain, or packed compressed
 *                        bytes), followed by its L2 table
 *   then                 refcount table, then refcount blocks covering everything
 *
 * Memory is one L2 table, the L1 table (bounded by the virtual size, at most
 * 32 MiB), an 8 MiB write buffer and a read-ahead of at most 4 MiB (or one cluster).
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { StrataError, badInput } from '../../errors.js';
import type { Extent } from '../../image/device.js';
import type { OnProgress } from '../../store/core/index.js';
import { compressCluster } from './compress.js';
import { EXT_BACKING_FORMAT, MAX_BACKING_NAME, MAX_L1_ENTRIES, MAX_VIRTUAL_SIZE, QCOW2_MAGIC, l1EntriesNeeded } from './header.js';

export interface Qcow2Source {
  size: number;
  read(offset: number, length: number): Buffer;
  extents(offset: number, length: number): Extent[];
}

export interface Qcow2WriteOptions {
  /** Power of two from 512 to 2 MiB; default 65536. */
  clusterSize?: number;
  /** Deflate-compress data clusters where that saves at least a sector. */
  compress?: boolean;
  backingFile?: string;
  backingFormat?: string;
  /** Bytes of the virtual size gone through; may throw to stop, and the file is removed (one this call created). */
  onProgress?: OnProgress;
  /**
   * Write into this open file or block device instead of creating `path`
   * (which then only names it in errors). The caller owns `fd`: it is neither
   * closed nor removed here.
   */
  fd?: number;
  /** Cut the file to the image's end (default true). A block device cannot be cut, and needs no cut. */
  truncate?: boolean;
}

export interface Qcow2WriteResult {
  /** Virtual size in the header: the source's size rounded up to a multiple of 512. */
  virtualSize: number;
  /** Guest clusters stored as data (plain or compressed). */
  clusters: number;
  /** Size of the written file in bytes. */
  bytes: number;
}

const TWO32 = 2 ** 32;
const HEADER_LENGTH = 104;
const WRITE_BUFFER = 8 * 1024 * 1024;
const READ_AHEAD = 4 * 1024 * 1024;
const MAX_REFCOUNT = 0xffff;

/**
 * Positional writes gathered into large sequential writes through one reused
 * staging buffer: callers may reuse their buffers as soon as write() returns.
 */
class Output {
  private readonly stage = Buffer.allocUnsafe(WRITE_BUFFER);
  private start = 0;
  private len = 0;
  constructor(private readonly fd: number) {}

  write(buf: Buffer, position: number): void {
    if (this.len && (this.start + this.len !== position || this.len + buf.length > this.stage.length)) this.flush();
    if (buf.length > this.stage.length) {
      this.pwrite(buf, position);
      return;
    }
    if (!this.len) this.start = position;
    buf.copy(this.stage, this.len);
    this.len += buf.length;
  }

  flush(): void {
    if (!this.len) return;
    this.pwrite(this.stage.subarray(0, this.len), this.start);
    this.len = 0;
  }

  private pwrite(buf: Buffer, position: number): void {
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, position + done);
  }
}

function writeEntry(buf: Buffer, off: number, value: number, flagsHi = 0): void {
  buf.writeUInt32BE((flagsHi | Math.floor(value / TWO32)) >>> 0, off);
  buf.writeUInt32BE(value >>> 0, off + 4);
}

function isZero(buf: Buffer, zeros: Buffer): boolean {
  return buf.equals(buf.length === zeros.length ? zeros : zeros.subarray(0, buf.length));
}

export function writeQcow2(path: string, source: Qcow2Source, opts: Qcow2WriteOptions = {}): Qcow2WriteResult {
  const cs = opts.clusterSize ?? 65536;
  if (!Number.isInteger(cs) || cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1)) !== 0) {
    throw badInput(`qcow2 cluster size ${cs} must be a power of two from 512 to 2097152`);
  }
  const clusterBits = Math.log2(cs);
  const size = source.size;
  // QEMU keeps a qcow2 image's size in 512-byte sectors and rounds an unaligned header size
  // down, losing the source's last bytes; like qemu-img create, round up instead. The padding
  // lies in the last cluster, past `size`: a data cluster is zero-filled there, and a backing
  // file written here is padded the same way. Clusters are whole sectors, so none is added.
  const virtualSize = Math.ceil(size / 512) * 512;
  if (!Number.isSafeInteger(size) || size < 0 || virtualSize > MAX_VIRTUAL_SIZE) throw badInput(`qcow2 virtual size ${size} is out of range`);
  const l2PerTable = cs / 8;
  const nClusters = Math.ceil(size / cs);
  const l1Entries = l1EntriesNeeded(virtualSize, clusterBits, false);
  if (l1Entries > MAX_L1_ENTRIES) throw badInput(`virtual size ${size} needs an L1 table over 32 MiB with ${cs} byte clusters; use a larger cluster size`);
  const header = buildHeader(cs, opts);

  let fd: number;
  const owned = opts.fd === undefined;
  try {
    fd = opts.fd ?? openSync(path, 'w');
  } catch (e) {
    throw new StrataError('E_IO', `${path}: cannot create: ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    const out = new Output(fd);
    const l1Clusters = Math.ceil((l1Entries * 8) / cs); // 0 for an empty image: qemu then leaves the L1 offset 0 too
    const l1 = Buffer.alloc(l1Clusters * cs);
    /** End of everything written so far, in bytes (not necessarily cluster aligned after compressed data). */
    let end = (1 + l1Clusters) * cs;
    /** Host clusters holding compressed data: refcount = number of compressed clusters touching it. */
    const shared = new Map<number, number>();
    const zeros = Buffer.alloc(cs);
    let dataClusters = 0;

    const allocCluster = (): number => {
      const off = Math.ceil(end / cs) * cs;
      end = off + cs;
      return off;
    };
    const csizeShift = 62 - (clusterBits - 8);
    const placeCompressed = (len: number): { host: number; sectors: number } => {
      let host = end;
      // Keep refcounts within 16 bits: start a fresh cluster if this one is saturated.
      if (host % cs !== 0 && (shared.get(Math.floor(host / cs)) ?? 0) >= MAX_REFCOUNT - 1) host = Math.ceil(host / cs) * cs;
      const first = Math.floor(host / 512);
      const last = Math.floor((host + len - 1) / 512);
      for (let c = Math.floor((first * 512) / cs); c <= Math.floor((last * 512 + 511) / cs); c++) shared.set(c, (shared.get(c) ?? 0) + 1);
      end = host + len;
      return { host, sectors: last - first };
    };

    const l2 = Buffer.alloc(cs);
    for (let g = 0; g < l1Entries; g++) {
      const gStart = g * l2PerTable * cs;
      const gEnd = Math.min(size, gStart + l2PerTable * cs);
      const exts = source.extents(gStart, gEnd - gStart);
      l2.fill(0);
      let used = false;
      let ei = 0;
      // Read-ahead window over a run of data extents: one source read per READ_AHEAD bytes, not per cluster.
      let raStart = 0;
      let raBuf: Buffer | null = null;
      for (let ci = g * l2PerTable; ci < Math.min(nClusters, (g + 1) * l2PerTable); ci++) {
        const cStart = ci * cs;
        const cEnd = Math.min(size, cStart + cs);
        // Classify the cluster from the extents overlapping it.
        while (ei < exts.length && exts[ei].offset + exts[ei].length <= cStart) ei++;
        let allHole = true;
        let anyData = false;
        let anyHole = false;
        for (let j = ei; j < exts.length && exts[j].offset < cEnd; j++) {
          if (exts[j].kind !== 'hole') allHole = false;
          else anyHole = true;
          if (exts[j].kind === 'data') anyData = true;
        }
        const e = (ci - g * l2PerTable) * 8;
        if (allHole) continue; // unallocated: a backing file shows through
        used = true;
        let data: Buffer | null = null;
        // A cluster part zero, part hole is read too: over a backing file its hole part may hold data.
        if (anyData || anyHole) {
          if (!raBuf || cStart < raStart || cEnd > raStart + raBuf.length) {
            // Extend the read over following data extents, up to READ_AHEAD, in whole clusters.
            let runEnd = cEnd;
            for (let j = ei; j < exts.length && exts[j].offset <= runEnd && (exts[j].kind === 'data' || exts[j].offset < cEnd); j++) {
              if (exts[j].kind === 'data') runEnd = Math.max(runEnd, exts[j].offset + exts[j].length);
            }
            const readEnd = Math.min(gEnd, cStart + Math.max(cs, READ_AHEAD), Math.ceil(runEnd / cs) * cs);
            opts.onProgress?.(cStart, size);
            raStart = cStart;
            raBuf = source.read(cStart, readEnd - cStart);
            if (raBuf.length !== readEnd - cStart) throw new StrataError('E_INTERNAL', `source read returned ${raBuf.length} bytes, expected ${readEnd - cStart}`);
          }
          data = raBuf.subarray(cStart - raStart, cEnd - raStart);
          if (isZero(data, zeros)) data = null;
        }
        if (!data) {
          l2.writeUInt32BE(1, e + 4); // zero flag (bit 0), no host cluster
          continue;
        }
        dataClusters++;
        if (data.length < cs) data = Buffer.concat([data, zeros.subarray(0, cs - data.length)]); // last, partial cluster
        const packed = opts.compress ? compressCluster(data, cs) : null;
        if (packed) {
          const { host, sectors } = placeCompressed(packed.length);
          out.write(packed, host);
          // Compressed descriptor: bit 62, sector count at csizeShift, byte offset below it.
          const hi = 0x40000000 + sectors * 2 ** (csizeShift - 32) + Math.floor(host / TWO32);
          l2.writeUInt32BE(hi >>> 0, e);
          l2.writeUInt32BE(host >>> 0, e + 4);
        } else {
          const host = allocCluster();
          out.write(data, host);
          writeEntry(l2, e, host, 0x80000000); // bit 63: refcount is exactly one
        }
      }
      opts.onProgress?.(gEnd, size);
      if (!used) continue;
      // The L2 table follows the data it maps, so a torn write never leaves it pointing past EOF.
      const l2Host = allocCluster();
      out.write(l2, l2Host);
      writeEntry(l1, g * 8, l2Host, 0x80000000);
    }

    // Refcount structures cover every cluster including themselves: find the fixed point.
    const dataEnd = Math.ceil(end / cs);
    const perBlock = cs / 2; // 16-bit entries
    let blocks = 0;
    let tableClusters = 0;
    for (;;) {
      const total = dataEnd + tableClusters + blocks;
      const b2 = Math.ceil(total / perBlock);
      const t2 = Math.ceil((b2 * 8) / cs);
      if (b2 === blocks && t2 === tableClusters) break;
      blocks = b2;
      tableClusters = t2;
    }
    const totalClusters = dataEnd + tableClusters + blocks;
    const rtOffset = dataEnd * cs;
    const rt = Buffer.alloc(tableClusters * cs);
    for (let i = 0; i < blocks; i++) writeEntry(rt, i * 8, (dataEnd + tableClusters + i) * cs);
    out.write(rt, rtOffset);
    for (let i = 0; i < blocks; i++) {
      const rb = Buffer.alloc(cs);
      for (let j = 0; j < perBlock; j++) {
        const c = i * perBlock + j;
        if (c >= totalClusters) break;
        rb.writeUInt16BE(shared.get(c) ?? 1, j * 2);
      }
      out.write(rb, (dataEnd + tableClusters + i) * cs);
    }
    if (l1Clusters) out.write(l1, cs);
    out.flush();
    // On a device nothing is cut: every cluster the tables point at has been written whole, so old bytes there are never read.
    if (opts.truncate ?? true) ftruncateSync(fd, totalClusters * cs);
    // Everything the header points at is durable before the header (and its magic) exists:
    // a crash before this point leaves a file that is not recognisably qcow2.
    fdatasyncSync(fd);
    writeEntry(header, 24, virtualSize);
    header.writeUInt32BE(l1Entries, 36);
    writeEntry(header, 40, l1Clusters ? cs : 0);
    writeEntry(header, 48, rtOffset);
    header.writeUInt32BE(tableClusters, 56);
    writeSync(fd, header, 0, header.length, 0);
    fdatasyncSync(fd);
    if (owned) closeSync(fd);
    return { virtualSize, clusters: dataClusters, bytes: totalClusters * cs };
  } catch (e) {
    if (!owned) throw e;
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    try {
      unlinkSync(path);
    } catch {
      /* nothing to remove */
    }
    throw e;
  }
}

/** Header cluster without the table offsets (filled in once the layout is known). */
function buildHeader(cs: number, opts: Qcow2WriteOptions): Buffer {
  const h = Buffer.alloc(cs);
  h.writeUInt32BE(QCOW2_MAGIC, 0);
  h.writeUInt32BE(3, 4);
  h.writeUInt32BE(Math.log2(cs), 20);
  h.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  h.writeUInt32BE(HEADER_LENGTH, 100);
  let off = HEADER_LENGTH;
  if (opts.backingFormat !== undefined) {
    if (opts.backingFile === undefined) throw badInput('backingFormat given without backingFile');
    const fmt = Buffer.from(opts.backingFormat, 'utf8');
    if (fmt.length === 0 || fmt.length > 15) throw badInput(`backing format ${JSON.stringify(opts.backingFormat)} must be 1 to 15 bytes`);
    h.writeUInt32BE(EXT_BACKING_FORMAT, off);
    h.writeUInt32BE(fmt.length, off + 4);
    fmt.copy(h, off + 8);
    off += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  off += 8; // end-of-extensions marker (zeros)
  if (opts.backingFile !== undefined) {
    const name = Buffer.from(opts.backingFile, 'utf8');
    if (name.length === 0 || name.length > MAX_BACKING_NAME) throw badInput(`backing file name must be 1 to ${MAX_BACKING_NAME} bytes`);
    if (off + name.length > cs) throw badInput(`backing file name of ${name.length} bytes does not fit in a ${cs} byte header cluster`);
    name.copy(h, off);
    writeEntry(h, 8, off);
    h.writeUInt32BE(name.length, 16);
    off += name.length;
  }
  return h.subarray(0, Math.ceil(off / 512) * 512);
}
