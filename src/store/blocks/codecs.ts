/**
 * Block codecs: each 4 KiB block compressed on its own, so any one block is
 * read back without its neighbours (a random 4 KiB read costs one slot read
 * and one small decode).
 *
 * zstd and lz4 come from the system libraries (libzstd, liblz4), linked into
 * the native addon when their headers are there at install: Node 20's zlib
 * has no zstd, and of the npm bindings one downloads prebuilt binaries and
 * another did not install offline. The addon also compresses a batch on
 * every core. Without it strata still reads every compressed store: zstd
 * through fzstd (pure JS, already used for zstd OCI layers), lz4 through the
 * small decoder below; only writing compressed blocks needs the addon.
 */
import { decompress as fzstdDecompress } from 'fzstd';
import { prepared } from '../core/statements.js';
import { StrataError, corrupt } from '../../errors.js';
import { nativeCodecs, nativeStatus } from './native.js';
import { BLOCK_SIZE } from '../core/types.js';
import { zstdFrameProblem } from './zstd-frame.js';
import { sqlOf, type Reader, type WriteTx } from '../core/tx.js';

/** lz4hc is lz4's high-compression mode: slower to write, the same lz4 blocks to read (stored as lz4). */
export type CodecName = 'zstd' | 'lz4' | 'lz4hc';

/** Codec numbers as stored in slot locations: never renumber. lz4hc writes lz4 blocks. */
export const CODEC_IDS: Record<CodecName, number> = { zstd: 1, lz4: 2, lz4hc: 2 };
/** What the addon's compressBlocks takes for each codec. */
const NATIVE_CODEC: Record<CodecName, number> = { zstd: 1, lz4: 2, lz4hc: 3 };
/** The codec that decodes a stored codec number. */
export const codecName = (id: number): 'zstd' | 'lz4' | undefined => (id === 1 ? 'zstd' : id === 2 ? 'lz4' : undefined);

/** Default levels: zstd 3 (its own default), lz4 acceleration 1, lz4hc 9 (its own default). */
export const DEFAULT_LEVEL: Record<CodecName, number> = { zstd: 3, lz4: 1, lz4hc: 9 };

/**
 * A block is stored compressed only if it shrinks to this or less: a fragment
 * saving less than an eighth is not worth a decode on every read.
 */
export const FRAGMENT_LIMIT = BLOCK_SIZE - BLOCK_SIZE / 8;

export interface CodecSpec {
  codec: CodecName;
  level: number;
}

/** Level ranges, as the libraries take them (lz4's is its acceleration: higher is faster, larger). */
const LEVELS: Record<CodecName, [number, number]> = { zstd: [1, 19], lz4: [1, 65537], lz4hc: [1, 12] };

/**
 * Parses a compression setting as ZFS spells it: `zstd`, `zstd-7`, `lz4`,
 * `lz4hc`, `lz4hc-12`, `none` (also `off`). Returns null for none.
 */
export function parseCompression(s: string): CodecSpec | null {
  const v = s.trim().toLowerCase();
  if (v === 'none' || v === 'off') return null;
  const m = /^(zstd|lz4hc|lz4)(?:-(\d+))?$/.exec(v);
  if (!m) throw new StrataError('E_BAD_INPUT', `unknown compression '${s}': use zstd, zstd-LEVEL (1-19), lz4, lz4hc, lz4hc-LEVEL (1-12) or none`, { compression: s });
  const codec = m[1] as CodecName;
  const level = m[2] === undefined ? DEFAULT_LEVEL[codec] : Number(m[2]);
  const [lo, hi] = LEVELS[codec];
  if (!(level >= lo && level <= hi)) throw new StrataError('E_BAD_INPUT', `${codec} level ${m[2]} is out of range (${lo}-${hi})`, { compression: s });
  return { codec, level };
}

/** The setting as parseCompression reads it back. */
export const compressionText = (spec: CodecSpec | null): string =>
  spec === null ? 'none' : spec.level === DEFAULT_LEVEL[spec.codec] ? spec.codec : `${spec.codec}-${spec.level}`;

/** The store's compression for new imports (meta.compression; 'none' until set). */
export function storeCompression(on: Reader): CodecSpec | null {
  const db = sqlOf(on);
  const v = prepared(db, "SELECT value FROM meta WHERE key = 'compression'").pluck().get() as string | undefined;
  return v === undefined ? null : parseCompression(String(v));
}

/** Sets the store's compression for new imports (blocks already stored stay as they are). */
export function setStoreCompression(tx: WriteTx, spec: CodecSpec | null): void {
  const db = sqlOf(tx);
  if (spec) requireCompressor(spec.codec);
  prepared(db, "INSERT INTO meta(key, value) VALUES ('compression', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(compressionText(spec));
}

/** Whether this process can write blocks compressed with `codec`. */
export function canCompress(codec: CodecName): boolean {
  return nativeCodecs()?.[codec === 'lz4hc' ? 'lz4' : codec] ?? false;
}

/** Throws a clear error when `codec` cannot be written here. */
export function requireCompressor(codec: CodecName): void {
  if (canCompress(codec)) return;
  const status = nativeStatus();
  const lib = codec === 'zstd' ? 'libzstd' : 'liblz4';
  const why = status.mode === 'fallback' ? `the native addon is not in use (${status.reason})` : `the native addon was built without ${lib} (apt-get install libzstd-dev liblz4-dev, then npm rebuild strata-disk)`;
  throw new StrataError('E_UNSUPPORTED', `cannot write ${codec}-compressed blocks: ${why}`, { codec });
}

/** Blocks per call into the addon: the scratch buffers stay at 4 MiB each whatever the batch. */
const CHUNK_BLOCKS = 1024;
let scratch: { src: Buffer; out: Buffer; sizes: Int32Array } | null = null;

/**
 * Compresses `blocks` (4 KiB each) in chunks through reused scratch buffers,
 * calling visit(i, buf, at, length) for each: its output is buf[at, at +
 * length), valid only during the call; length 0 means it does not shrink
 * to FRAGMENT_LIMIT. Memory stays flat however many blocks a flush holds.
 */
export function compressEach(spec: CodecSpec, blocks: readonly Uint8Array[], visit: (i: number, buf: Buffer, at: number, length: number) => void): void {
  const codecs = nativeCodecs();
  if (!canCompress(spec.codec)) requireCompressor(spec.codec);
  scratch ??= { src: Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_SIZE), out: Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_SIZE), sizes: new Int32Array(CHUNK_BLOCKS) };
  const { src, out, sizes } = scratch;
  for (let first = 0; first < blocks.length; first += CHUNK_BLOCKS) {
    const n = Math.min(CHUNK_BLOCKS, blocks.length - first);
    for (let k = 0; k < n; k++) src.set(blocks[first + k], k * BLOCK_SIZE);
    codecs!.compress(NATIVE_CODEC[spec.codec], spec.level, src, n, out, sizes, FRAGMENT_LIMIT);
    for (let k = 0; k < n; k++) visit(first + k, out, k * BLOCK_SIZE, sizes[k]);
  }
}

/** A batch compressed by compressBatch: block i's output is out[i * 4096, + sizes[i]); 0 means it does not shrink. */
export interface CompressedBatch {
  out: Buffer;
  sizes: Int32Array;
}

/**
 * Compresses `count` blocks lying back to back in `src`, off the event loop
 * where the addon can (its threads, on a libuv worker), so a caller goes on
 * reading, hashing and uploading meanwhile. One call per batch of thousands:
 * each call costs tens of µs. `src` must stay untouched until it settles.
 */
export function compressBatch(spec: CodecSpec, src: Uint8Array, count: number): Promise<CompressedBatch> {
  const codecs = nativeCodecs();
  if (!canCompress(spec.codec)) requireCompressor(spec.codec);
  const out = Buffer.allocUnsafe(count * BLOCK_SIZE);
  const sizes = new Int32Array(count);
  const async = codecs!.compressAsync;
  // An addon built before the async call: the same work, on this thread.
  if (!async) {
    codecs!.compress(NATIVE_CODEC[spec.codec], spec.level, src, count, out, sizes, FRAGMENT_LIMIT);
    return Promise.resolve({ out, sizes });
  }
  return new Promise((resolve, reject) =>
    async(NATIVE_CODEC[spec.codec], spec.level, src, count, out, sizes, FRAGMENT_LIMIT, (err) => (err ? reject(new StrataError('E_INTERNAL', `compression failed: ${err.message}`)) : resolve({ out, sizes }))),
  );
}

/** Decodes one fragment into out[at, at + 4096); throws E_CORRUPT unless it is exactly one block. */
export function decompressBlock(codecId: number, src: Uint8Array, offset: number, length: number, out: Uint8Array, at: number): void {
  const codecs = nativeCodecs();
  const name = codecName(codecId);
  if (!name) throw corrupt(`unknown codec ${codecId} in a block location`, { codec: codecId });
  let n: number;
  try {
    if (codecs?.[name]) n = codecs.decompress(codecId, src, offset, length, out, at);
    else if (name === 'zstd') {
      // The addon decodes into the 4 KiB given; fzstd would first allocate what the frame asks (zstd-frame.ts).
      const frame = src.subarray(offset, offset + length);
      const why = zstdFrameProblem(frame, BLOCK_SIZE);
      if (why) throw corrupt(`a zstd fragment is not one block: ${why}`, { codec: name });
      const got = fzstdDecompress(frame);
      n = got.length;
      if (n === BLOCK_SIZE) out.set(got, at);
    } else n = lz4Decode(src.subarray(offset, offset + length), out.subarray(at, at + BLOCK_SIZE));
  } catch (e) {
    if (e instanceof StrataError) throw e;
    throw corrupt(`a ${name} fragment does not decode: ${(e as Error).message}`, { codec: name });
  }
  if (n !== BLOCK_SIZE) throw corrupt(`a ${name} fragment decodes to ${n} bytes, not ${BLOCK_SIZE}`, { codec: name });
}

/** LZ4 block format (lz4_Block_format.md) decoder; returns the bytes written, throws on bad input. */
function lz4Decode(src: Uint8Array, dst: Uint8Array): number {
  let s = 0;
  let d = 0;
  const bad = () => new Error('malformed lz4 block');
  const len = (n: number) => {
    if (n !== 15) return n;
    let b: number;
    do {
      if (s >= src.length) throw bad();
      b = src[s++];
      n += b;
    } while (b === 255);
    return n;
  };
  while (s < src.length) {
    const token = src[s++];
    const lit = len(token >> 4);
    if (s + lit > src.length || d + lit > dst.length) throw bad();
    dst.set(src.subarray(s, s + lit), d);
    s += lit;
    d += lit;
    if (s >= src.length) break; // the last sequence has literals only
    if (s + 2 > src.length) throw bad();
    const off = src[s] | (src[s + 1] << 8);
    s += 2;
    if (off === 0 || off > d) throw bad();
    const m = len(token & 15) + 4;
    if (d + m > dst.length) throw bad();
    for (let k = 0; k < m; k++, d++) dst[d] = dst[d - off];
  }
  return d;
}
