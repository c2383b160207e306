/**
 * The send stream's wire format (docs/send-stream.md): what `strata send`
 * writes and `strata receive` reads. Pure encoding and decoding, with every
 * size a stream declares checked against a fixed bound before anything is
 * allocated for it: a stream comes from another host, a file or a pipe and is
 * never trusted.
 *
 *   preamble  MAGIC (8) | version u16 | flags u16 | header length u32 | header JSON
 *   records   'D' first u64 | count u16 | count x length u16 | payloads     data blocks
 *             'Z' first u64 | count u64                                     blocks that read zero
 *             'H' first u64 | count u64                                     holes (read zero too)
 *             'E' data u64 | zero u64 | content sha256 (32) | stream sha256 (32)   the end
 *
 * Little-endian throughout. Records name whole 4 KiB blocks, in increasing
 * order and without overlap. A payload of 4096 bytes is the block as it is;
 * a shorter one is one zstd frame of it (the store's per-block codec).
 */
import { StrataError } from '../errors.js';
import { BLOCK_SIZE } from '../store/core/index.js';

export const STREAM_MAGIC = Buffer.from('\x89STRSND\n', 'latin1');
export const STREAM_VERSION = 1;
/** A header is a few hundred bytes of JSON; anything near this is not one. */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Blocks per data record: a record is at most 4 MiB of payload plus its table, all a reader holds at once. */
export const MAX_RECORD_BLOCKS = 1024;
export const PREAMBLE_BYTES = STREAM_MAGIC.length + 2 + 2 + 4;
export const DATA_HEAD_BYTES = 1 + 8 + 2;
export const RUN_BYTES = 1 + 8 + 8;
export const DIGEST_BYTES = 32;
/** The trailer after its type byte: counts, the image's content digest, and the digest of the stream. */
export const TRAILER_BYTES = 8 + 8 + DIGEST_BYTES + DIGEST_BYTES;

export const RECORD = { data: 0x44, zero: 0x5a, hole: 0x48, end: 0x45 } as const;

/** What the header says about an image: the one sent, or the base an incremental stream applies to. */
export interface StreamImage {
  name: string;
  size: number;
}

export interface StreamHeader {
  format: 'strata-send';
  /** The sent image: its name at the sender and its virtual size. Its content digest is in the trailer. */
  image: StreamImage & { createdAt: string };
  /** For an incremental stream, the image it applies to and the digest of that image's content (contentDigest). */
  base: (StreamImage & { content: string }) | null;
  /** How the shorter payloads are compressed. */
  codec: 'zstd';
  blockSize: typeof BLOCK_SIZE;
}

/** Which part of a stream a reader was in: the words a truncation or corruption message uses. */
export type StreamPart = 'header' | 'extent table' | 'block data' | 'trailer';

/** What send and receive report about one stream (--json). */
export interface StreamSummary {
  /** The image sent, or made by receive. */
  name: string;
  /** The image an incremental stream applies to (the sender's name, or the one here); null for a full stream. */
  base: string | null;
  virtualSize: number;
  /** Bytes of the stream, preamble to trailer. */
  streamBytes: number;
  dataBlocks: number;
  /** Blocks in zero and hole runs: no bytes each. */
  zeroBlocks: number;
  /** The image's content digest (src/image/content-digest.ts), as the trailer carries it. */
  contentDigest: string;
}

export const badStream = (what: string, data: Record<string, unknown> = {}) => new StrataError('E_BAD_STREAM', `not a valid send stream: ${what}`, data);

export function encodePreamble(header: StreamHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(PREAMBLE_BYTES + json.length);
  STREAM_MAGIC.copy(out, 0);
  out.writeUInt16LE(STREAM_VERSION, 8);
  out.writeUInt16LE(0, 10);
  out.writeUInt32LE(json.length, 12);
  json.copy(out, PREAMBLE_BYTES);
  return out;
}

/** The header's length, from the fixed part of the preamble; throws E_BAD_STREAM for anything else. */
export function decodePreamble(b: Buffer): number {
  if (!b.subarray(0, 8).equals(STREAM_MAGIC)) throw badStream('it does not start with a strata send stream magic', { part: 'header' });
  const version = b.readUInt16LE(8);
  if (version !== STREAM_VERSION) throw new StrataError('E_UNSUPPORTED', `send stream version ${version} is not supported (this strata reads version ${STREAM_VERSION})`, { version });
  if (b.readUInt16LE(10) !== 0) throw badStream('unknown flags in its preamble', { part: 'header' });
  const n = b.readUInt32LE(12);
  if (n === 0 || n > MAX_HEADER_BYTES) throw badStream(`a header of ${n} bytes`, { part: 'header' });
  return n;
}

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isDigest = (v: unknown): v is string => typeof v === 'string' && /^sha256:[0-9a-f]{64}$/.test(v);

export function decodeHeader(json: Buffer): StreamHeader {
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw badStream('its header is not JSON', { part: 'header' });
  }
  const img = h?.image as Record<string, unknown> | undefined;
  const base = h?.base as Record<string, unknown> | null | undefined;
  if (h?.format !== 'strata-send' || !img || !isName(img.name) || !isSize(img.size) || typeof img.createdAt !== 'string') {
    throw badStream('its header does not describe an image', { part: 'header' });
  }
  if (base !== null && (!base || !isName(base.name) || !isSize(base.size) || !isDigest(base.content))) {
    throw badStream('its header names a base without a name, size and content digest', { part: 'header' });
  }
  if (h.blockSize !== BLOCK_SIZE) throw badStream(`a block size of ${String(h.blockSize)}`, { part: 'header' });
  if (h.codec !== 'zstd') throw new StrataError('E_UNSUPPORTED', `send stream codec ${JSON.stringify(h.codec)} is not supported`, { codec: h.codec });
  return h as unknown as StreamHeader;
}

export function encodeDataHead(first: number, count: number, lengths: readonly number[]): Buffer {
  const out = Buffer.alloc(DATA_HEAD_BYTES + 2 * count);
  out[0] = RECORD.data;
  out.writeBigUInt64LE(BigInt(first), 1);
  out.writeUInt16LE(count, 9);
  for (let k = 0; k < count; k++) out.writeUInt16LE(lengths[k], DATA_HEAD_BYTES + 2 * k);
  return out;
}

export function encodeRun(type: typeof RECORD.zero | typeof RECORD.hole, first: number, count: number): Buffer {
  const out = Buffer.alloc(RUN_BYTES);
  out[0] = type;
  out.writeBigUInt64LE(BigInt(first), 1);
  out.writeBigUInt64LE(BigInt(count), 9);
  return out;
}

/** The trailer without its last field, the stream digest, which covers these bytes too. */
export function encodeTrailerBody(dataBlocks: number, zeroBlocks: number, content: string): Buffer {
  const out = Buffer.alloc(1 + 8 + 8 + DIGEST_BYTES);
  out[0] = RECORD.end;
  out.writeBigUInt64LE(BigInt(dataBlocks), 1);
  out.writeBigUInt64LE(BigInt(zeroBlocks), 9);
  Buffer.from(content.replace(/^sha256:/, ''), 'hex').copy(out, 17);
  return out;
}

/** A u64 field that must be a safe integer no larger than `max`. */
export function readCount(b: Buffer, at: number, max: number, what: string, part: StreamPart): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(max)) throw badStream(`${what} ${v} is beyond ${max}`, { part });
  return Number(v);
}

/** A payload length from a data record's table: 4096 (stored as is) or a zstd frame shorter than a block. */
export function checkPayloadLength(n: number): void {
  if (n === 0 || n > BLOCK_SIZE) throw badStream(`a block payload of ${n} bytes`, { part: 'extent table' });
}
