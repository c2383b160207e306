/**
 * header.ts: parse and validate the qcow2 header and its extensions
 * (docs/interop/qcow2.txt, "Header" and "Header extensions").
 *
 * Everything later code trusts about the file's geometry is checked here:
 * cluster size, header length, feature bits, virtual size against the L1
 * table, and the bounds of the L1, refcount and snapshot tables.
 */
import { StrataError, inputError, unsupported } from '../../errors.js';
import { ImageFile, hex } from './file.js';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21; // qemu's 2 MiB implementation limit
/** JS numbers are exact to 2^53; qemu's own limits are higher but no real image comes close. */
export const MAX_VIRTUAL_SIZE = 2 ** 53;
/** qemu's limits: 32 MiB of active L1 table, 8 MiB of refcount table, 65536 snapshots. */
export const MAX_L1_ENTRIES = (32 * 1024 * 1024) / 8;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
export const MAX_BACKING_NAME = 1023;

export const INCOMPAT_DIRTY = 0;
export const INCOMPAT_CORRUPT = 1;
export const INCOMPAT_DATA_FILE = 2;
export const INCOMPAT_COMPRESSION = 3;
export const INCOMPAT_EXTL2 = 4;
const KNOWN_INCOMPAT = 0b11111n;

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_DATA_FILE = 0x44415441;

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  clusterSize: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: 'deflate' | 'zstd';
  extendedL2: boolean;
  dirty: boolean;
  corruptBit: boolean;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  /** "incompatible:5" -> name, from the feature name table extension. */
  featureNames: Map<string, string>;
}

/** A 64-bit big-endian field as a number; values past 2^53 lose precision but then fail every range check. */
export function u64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 2 ** 32 + buf.readUInt32BE(off + 4);
}

/** Guest clusters per L2 table. */
export function l2Entries(clusterBits: number, extendedL2: boolean): number {
  return 2 ** (clusterBits - (extendedL2 ? 4 : 3));
}

/** L1 entries needed to map `size` bytes. */
export function l1EntriesNeeded(size: number, clusterBits: number, extendedL2: boolean): number {
  const clusters = Math.ceil(size / 2 ** clusterBits);
  return Math.ceil(clusters / l2Entries(clusterBits, extendedL2));
}

export function isQcow2Magic(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32BE(0) === QCOW2_MAGIC;
}

/**
 * Checks a contiguous table: cluster aligned, clear of the header cluster, inside the file.
 * `what` names the table in the error.
 */
export function checkTable(file: ImageFile, h: Pick<Qcow2Header, 'clusterSize'>, what: string, offset: number, bytes: number): void {
  if (offset % h.clusterSize !== 0) throw inputError(`${file.path}: ${what} offset ${hex(offset)} is not cluster aligned`);
  if (offset < h.clusterSize) throw inputError(`${file.path}: ${what} offset ${hex(offset)} overlaps the header cluster`);
  file.checkRange(offset, bytes, what);
}

function bitList(bits: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if ((bits >> BigInt(i)) & 1n) out.push(i);
  return out;
}

/**
 * Parses the header cluster. Refuses what strata cannot read correctly
 * (encryption, external data file, unknown incompatible bits) with
 * E_UNSUPPORTED, malformed fields with E_BAD_FILE. The corrupt and dirty bits
 * are reported, not refused: openQcow2 decides.
 */
export function parseHeader(file: ImageFile): Qcow2Header {
  const p = file.path;
  if (file.size < 4) throw inputError(`${p}: file truncated: ${file.size} bytes is too short for a qcow2 header`);
  const magic = file.readAt(0, 4, 'magic');
  if (!isQcow2Magic(magic)) throw new StrataError('E_BAD_INPUT', `${p}: not a qcow2 image (bad magic)`);
  if (file.size < 72) throw inputError(`${p}: file truncated: header needs 72 bytes, file has ${file.size}`);
  const b = file.readAt(0, Math.min(file.size, 112), 'header');
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw unsupported(`${p}: unsupported qcow2 version ${version}`, { version });
  const clusterBits = b.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw inputError(`${p}: cluster_bits ${clusterBits} out of range ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`);
  }
  const clusterSize = 2 ** clusterBits;

  let headerLength = 72;
  let incompatible = 0n;
  let compatible = 0n;
  let autoclear = 0n;
  let refcountOrder = 4;
  let compressionByte = 0;
  if (version === 3) {
    if (file.size < 104) throw inputError(`${p}: file truncated: version 3 header needs 104 bytes, file has ${file.size}`);
    incompatible = b.readBigUInt64BE(72);
    compatible = b.readBigUInt64BE(80);
    autoclear = b.readBigUInt64BE(88);
    refcountOrder = b.readUInt32BE(96);
    headerLength = b.readUInt32BE(100);
    if (headerLength < 104 || headerLength > clusterSize || headerLength % 8 !== 0) {
      throw inputError(`${p}: header_length ${headerLength} out of range (a multiple of 8 from 104 to the cluster size ${clusterSize})`);
    }
    if (headerLength > file.size) throw inputError(`${p}: file truncated: header_length ${headerLength} runs past end of file (${file.size} bytes)`);
    if (headerLength > 104) compressionByte = b[104];
    if (refcountOrder > 6) throw inputError(`${p}: refcount_order ${refcountOrder} out of range 0..6`);
  }

  const cryptMethod = b.readUInt32BE(32);
  if (cryptMethod !== 0) {
    const kind = cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : `method ${cryptMethod}`;
    throw unsupported(`${p}: encrypted qcow2 images are not supported (crypt_method ${cryptMethod}: ${kind})`, { cryptMethod });
  }

  const h: Qcow2Header = {
    version,
    backingFileOffset: u64(b, 8),
    backingFileSize: b.readUInt32BE(16),
    clusterBits,
    clusterSize,
    size: u64(b, 24),
    cryptMethod,
    l1Size: b.readUInt32BE(36),
    l1TableOffset: u64(b, 40),
    refcountTableOffset: u64(b, 48),
    refcountTableClusters: b.readUInt32BE(56),
    nbSnapshots: b.readUInt32BE(60),
    snapshotsOffset: u64(b, 64),
    incompatible,
    compatible,
    autoclear,
    refcountOrder,
    headerLength,
    compressionType: 'deflate',
    extendedL2: ((incompatible >> BigInt(INCOMPAT_EXTL2)) & 1n) === 1n,
    dirty: ((incompatible >> BigInt(INCOMPAT_DIRTY)) & 1n) === 1n,
    corruptBit: ((incompatible >> BigInt(INCOMPAT_CORRUPT)) & 1n) === 1n,
    featureNames: new Map(),
  };

  parseExtensions(file, h);

  const unknown = incompatible & ~KNOWN_INCOMPAT;
  if (unknown) {
    const bits = bitList(unknown).map((n) => {
      const name = h.featureNames.get(`incompatible:${n}`);
      return name ? `${n} (${name})` : String(n);
    });
    throw unsupported(`${p}: unknown incompatible feature bit${bits.length > 1 ? 's' : ''} ${bits.join(', ')}`, { bits: bitList(unknown) });
  }
  if ((incompatible >> BigInt(INCOMPAT_DATA_FILE)) & 1n) {
    throw unsupported(`${p}: external data file images are not supported (incompatible bit 2${h.dataFile ? `, data file ${h.dataFile}` : ''})`);
  }
  const compressionBit = ((incompatible >> BigInt(INCOMPAT_COMPRESSION)) & 1n) === 1n;
  if (compressionBit) {
    if (compressionByte === 0) throw inputError(`${p}: compression type bit is set but compression_type is zlib or absent`);
    if (compressionByte !== 1) throw unsupported(`${p}: unknown compression_type ${compressionByte}`);
    h.compressionType = 'zstd';
  } else if (compressionByte !== 0) {
    throw inputError(`${p}: compression_type ${compressionByte} set without the compression type feature bit`);
  }
  if (h.extendedL2 && clusterBits < 14) throw inputError(`${p}: extended L2 entries need cluster_bits >= 14, got ${clusterBits}`);

  validateGeometry(file, h);
  return h;
}

function parseExtensions(file: ImageFile, h: Qcow2Header): void {
  const p = file.path;
  // The extension area ends at the backing file name, or at the end of the header cluster.
  let end = h.clusterSize;
  if (h.backingFileOffset !== 0) {
    if (h.backingFileSize > MAX_BACKING_NAME) {
      throw inputError(`${p}: backing file name is ${h.backingFileSize} bytes, over the ${MAX_BACKING_NAME} byte limit`);
    }
    if (h.backingFileOffset + h.backingFileSize > h.clusterSize) {
      throw inputError(`${p}: backing file name at ${hex(h.backingFileOffset)} (${h.backingFileSize} bytes) lies outside the header cluster`);
    }
    if (h.backingFileOffset < h.headerLength) {
      throw inputError(`${p}: backing file name at ${hex(h.backingFileOffset)} overlaps the header`);
    }
    const name = file.readAt(h.backingFileOffset, h.backingFileSize, 'backing file name');
    h.backingFile = name.toString('utf8');
    end = h.backingFileOffset;
  }
  // Version 2 images carry extensions too (qemu writes the backing format one), right after the 72-byte header.
  let off = h.headerLength;
  const seen = new Set<number>();
  while (off + 8 <= end) {
    const eh = file.readAt(off, 8, 'header extension');
    const type = eh.readUInt32BE(0);
    const len = eh.readUInt32BE(4);
    if (type === EXT_END) return;
    if (len > end - off - 8) throw inputError(`${p}: header extension ${hex(type)} at ${hex(off)} (${len} bytes) runs past the header area`);
    const known = type === EXT_BACKING_FORMAT || type === EXT_FEATURE_TABLE || type === EXT_DATA_FILE;
    if (known && seen.has(type)) throw inputError(`${p}: header extension ${hex(type)} appears twice`);
    seen.add(type);
    const data = file.readAt(off + 8, len, `header extension ${hex(type)}`);
    if (type === EXT_BACKING_FORMAT) {
      if (len > 15) throw inputError(`${p}: backing format name is ${len} bytes, too long`);
      h.backingFormat = data.toString('utf8');
    } else if (type === EXT_FEATURE_TABLE) {
      const kinds = ['incompatible', 'compatible', 'autoclear'];
      for (let i = 0; i + 48 <= len; i += 48) {
        const kind = kinds[data[i]];
        if (!kind) continue;
        const raw = data.subarray(i + 2, i + 48);
        const z = raw.indexOf(0);
        h.featureNames.set(`${kind}:${data[i + 1]}`, raw.subarray(0, z < 0 ? raw.length : z).toString('utf8'));
      }
    } else if (type === EXT_DATA_FILE) {
      h.dataFile = data.toString('utf8');
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
}

function validateGeometry(file: ImageFile, h: Qcow2Header): void {
  const p = file.path;
  if (h.size > MAX_VIRTUAL_SIZE) throw inputError(`${p}: virtual size ${h.size} exceeds the 2^53 byte limit`);
  const need = l1EntriesNeeded(h.size, h.clusterBits, h.extendedL2);
  if (need > MAX_L1_ENTRIES) throw inputError(`${p}: virtual size ${h.size} needs an L1 table over 32 MiB (${need} entries)`);
  if (h.l1Size < need) throw inputError(`${p}: l1_size ${h.l1Size} too small for virtual size ${h.size} (needs ${need})`);
  if (h.l1Size > MAX_L1_ENTRIES) throw inputError(`${p}: l1_size ${h.l1Size} is absurdly large (limit ${MAX_L1_ENTRIES})`);
  if (h.l1Size > 0) checkTable(file, h, 'L1 table', h.l1TableOffset, h.l1Size * 8);

  if (h.refcountTableClusters === 0) throw inputError(`${p}: refcount_table_clusters is 0`);
  const rtBytes = h.refcountTableClusters * h.clusterSize;
  if (rtBytes > MAX_REFTABLE_BYTES) throw inputError(`${p}: refcount table of ${h.refcountTableClusters} clusters exceeds 8 MiB`);
  checkTable(file, h, 'refcount table', h.refcountTableOffset, rtBytes);
  if (h.l1Size > 0 && rangesOverlap(h.l1TableOffset, h.l1Size * 8, h.refcountTableOffset, rtBytes)) {
    throw inputError(`${p}: L1 table overlaps the refcount table`);
  }

  if (h.nbSnapshots > MAX_SNAPSHOTS) throw inputError(`${p}: nb_snapshots ${h.nbSnapshots} exceeds ${MAX_SNAPSHOTS}`);
  if (h.nbSnapshots > 0) checkTable(file, h, 'snapshot table', h.snapshotsOffset, 40);
}

export function rangesOverlap(a: number, alen: number, b: number, blen: number): boolean {
  return a < b + blen && b < a + alen;
}
