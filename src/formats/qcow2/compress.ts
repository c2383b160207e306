/**
 * compress.ts: compressed clusters. qcow2's "zlib" type is a raw deflate
 * stream with a 4 KiB window (qemu: deflateInit2(..., -12, ...)); zstd is one
 * or more zstd frames. Either may be followed by padding up to the sector
 * boundary, and must produce exactly one cluster.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { Decompress as ZstdStream, decompress as zstdDecompress } from 'fzstd';
import { inputError } from '../../errors.js';

export type CompressionType = 'deflate' | 'zstd';

/** Inflates `data` to exactly `clusterSize` bytes; `what` names the cluster in errors. */
export function decompressCluster(type: CompressionType, data: Buffer, clusterSize: number, what: string): Buffer {
  let out: Buffer;
  try {
    out = type === 'zstd' ? zstdCluster(data, clusterSize, what) : inflateRawSync(data, { maxOutputLength: clusterSize, finishFlush: constants.Z_SYNC_FLUSH });
  } catch (e) {
    if ((e as { code?: string }).code === 'E_BAD_FILE') throw e;
    throw inputError(`${what}: compressed data does not inflate (${(e as Error)?.message ?? e})`);
  }
  if (out.length !== clusterSize) throw inputError(`${what}: compressed data inflates to ${out.length} bytes, not one cluster (${clusterSize})`);
  return out;
}

/**
 * Decodes a compressed cluster's zstd data as qemu does: frame after frame
 * until exactly one cluster has come out (qemu's writer makes one frame, but
 * its reader accepts several, and so must we). Skippable frames are skipped;
 * what follows the last frame (sector padding) is ignored.
 */
function zstdCluster(data: Buffer, clusterSize: number, what: string): Buffer {
  const out = Buffer.alloc(clusterSize);
  let produced = 0;
  let pos = 0;
  while (produced < clusterSize) {
    if (pos + 8 <= data.length && (data.readUInt32LE(pos) & 0xfffffff0) === 0x184d2a50) {
      pos += 8 + data.readUInt32LE(pos + 4);
      continue;
    }
    if (produced > 0 && (pos + 4 > data.length || data.readUInt32LE(pos) !== 0xfd2fb528)) {
      throw inputError(`${what}: zstd frames inflate to ${produced} bytes, then no further frame: not one cluster (${clusterSize})`);
    }
    const { end, contentSize } = zstdFrame(data, pos, clusterSize - produced, what);
    const frame = data.subarray(pos, end);
    if (contentSize >= 0) {
      const r = zstdDecompress(frame, out.subarray(produced, produced + contentSize));
      if (r.length !== contentSize) throw inputError(`${what}: bad zstd frame: ${r.length} bytes where its header says ${contentSize}`);
      if (r.buffer !== out.buffer || r.byteOffset !== out.byteOffset + produced) out.set(r, produced);
      produced += r.length;
    } else {
      // No declared size: decode block by block, and stop at the first byte past the cluster.
      const d = new ZstdStream((chunk) => {
        if (produced + chunk.length > clusterSize) throw inputError(`${what}: compressed data inflates past one cluster (${clusterSize} bytes)`);
        out.set(chunk, produced);
        produced += chunk.length;
      });
      d.push(frame, true);
    }
    pos = end;
  }
  return out;
}

/**
 * Walks the zstd frame at `start` (header, block headers) without decoding
 * it, so its end is known and a declared content size or window larger than
 * the `room` left in the cluster is refused before anything is allocated.
 */
function zstdFrame(data: Buffer, start: number, room: number, what: string): { end: number; contentSize: number } {
  const bad = (why: string) => inputError(`${what}: bad zstd frame: ${why}`);
  if (start + 6 > data.length || data.readUInt32LE(start) !== 0xfd2fb528) throw bad('missing magic');
  const fhd = data[start + 4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 8) throw bad('reserved bit set');
  if (dictFlag) throw bad('dictionary frames are not used by qcow2');
  let pos = start + 5;
  let window = 0;
  if (!single) {
    const wd = data[pos++];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
  let fcs = -1;
  if (pos + fcsBytes > data.length) throw bad('truncated header');
  if (fcsBytes === 1) fcs = data[pos];
  else if (fcsBytes === 2) fcs = data.readUInt16LE(pos) + 256;
  else if (fcsBytes === 4) fcs = data.readUInt32LE(pos);
  else if (fcsBytes === 8) fcs = data.readUInt32LE(pos) + data.readUInt32LE(pos + 4) * 2 ** 32;
  pos += fcsBytes;
  if (fcs > room) throw bad(`content size ${fcs} is more than the ${room} bytes left of the cluster`);
  if (window > Math.max(room, 1 << 20) * 8) throw bad(`window of ${window} bytes is too large`);
  for (;;) {
    if (pos + 3 > data.length) throw bad('truncated block');
    const bh = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
    const last = bh & 1;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) throw bad('reserved block type');
    pos += 3 + (type === 1 ? 1 : size);
    if (pos > data.length) throw bad('block runs past the compressed data');
    if (last) break;
  }
  if (checksum) pos += 4;
  if (pos > data.length) throw bad('truncated checksum');
  return { end: pos, contentSize: fcs };
}

/** Compresses one cluster as qemu does (raw deflate, 4 KiB window); null when that saves nothing. */
export function compressCluster(data: Buffer, clusterSize: number): Buffer | null {
  const out = deflateRawSync(data, { windowBits: 12, level: constants.Z_DEFAULT_COMPRESSION, memLevel: 9 });
  // qemu writes a normal cluster unless compression saves at least a sector.
  return out.length <= clusterSize - 512 ? out : null;
}
