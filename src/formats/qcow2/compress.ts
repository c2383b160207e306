/**
 * compress.ts: compressed clusters. qcow2's "zlib" type is a raw deflate
 * stream with a 4 KiB window (qemu: deflateInit2(..., -12, ...)); zstd is one
 * zstd frame. Either may be followed by padding up to the sector boundary, and
 * must produce exactly one cluster.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { corrupt } from '../../errors.js';

export type CompressionType = 'deflate' | 'zstd';

/** Inflates `data` to exactly `clusterSize` bytes; `what` names the cluster in errors. */
export function decompressCluster(type: CompressionType, data: Buffer, clusterSize: number, what: string): Buffer {
  let out: Buffer;
  try {
    out = type === 'zstd' ? zstdCluster(data, clusterSize, what) : inflateRawSync(data, { maxOutputLength: clusterSize, finishFlush: constants.Z_SYNC_FLUSH });
  } catch (e) {
    if ((e as { code?: string }).code === 'E_CORRUPT') throw e;
    throw corrupt(`${what}: compressed data does not inflate (${(e as Error)?.message ?? e})`);
  }
  if (out.length !== clusterSize) throw corrupt(`${what}: compressed data inflates to ${out.length} bytes, not one cluster (${clusterSize})`);
  return out;
}

/**
 * Decodes one zstd frame. The frame is walked first (header, block headers) so
 * sector padding after it is ignored and a declared content size or window
 * larger than one cluster is refused before anything is allocated.
 */
function zstdCluster(data: Buffer, clusterSize: number, what: string): Buffer {
  const bad = (why: string) => corrupt(`${what}: bad zstd frame: ${why}`);
  if (data.length < 6 || data.readUInt32LE(0) !== 0xfd2fb528) throw bad('missing magic');
  const fhd = data[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 8) throw bad('reserved bit set');
  if (dictFlag) throw bad('dictionary frames are not used by qcow2');
  let pos = 5;
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
  if (fcs >= 0 && fcs !== clusterSize) throw bad(`content size ${fcs} is not one cluster (${clusterSize})`);
  if (window > Math.max(clusterSize, 1 << 20) * 8) throw bad(`window of ${window} bytes is too large`);
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
  const frame = data.subarray(0, pos);
  if (fcs >= 0) {
    const out = Buffer.alloc(clusterSize);
    const r = zstdDecompress(frame, out);
    return r.length === clusterSize ? out : Buffer.from(r.buffer, r.byteOffset, r.length);
  }
  const r = zstdDecompress(frame);
  return Buffer.from(r.buffer, r.byteOffset, r.length);
}

/** Compresses one cluster as qemu does (raw deflate, 4 KiB window); null when that saves nothing. */
export function compressCluster(data: Buffer, clusterSize: number): Buffer | null {
  const out = deflateRawSync(data, { windowBits: 12, level: constants.Z_DEFAULT_COMPRESSION, memLevel: 9 });
  // qemu writes a normal cluster unless compression saves at least a sector.
  return out.length <= clusterSize - 512 ? out : null;
}
