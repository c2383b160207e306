/**
 * Index objects and pack trailers: which block is where. Pure encode and
 * decode; a malformed object is E_CORRUPT naming it.
 *
 * Index (little-endian):
 *   "STRATAIX" u32 version=1 u32 packs  packs × 32-byte pack id
 *   u32 entries  entries × 52 bytes:
 *     digest[32] u32 pack-number u32 offset u16 length u8 codec u8 0 f64 hint
 *
 * Pack: the fragments back to back, then its trailer (so a lost index can
 * be rebuilt from the packs, as restic's rebuild-index does):
 *   entries × 48 bytes: digest[32] u32 offset u16 length u8 codec u8 0 f64 hint
 *   u32 entries  "STRATAPK"
 *
 * codec: 0 = the raw 4 KiB block, else the store's codec numbers
 * (codecs.ts: 1 zstd, 2 lz4). hint: the block's 53-bit XXH64 as the store
 * computes it (hash.ts), which another store looks up in its dedup index to
 * find the block locally before fetching it.
 *
 * Both come from a bucket others write to: decode checks every field it
 * can alone (a codec strata knows, a length one fragment can have, a hint
 * that is a 53-bit number, an index's pack list sorted, distinct and each
 * used), and a push writes an index per MAX_INDEX_ENTRIES blocks, so an
 * index object has a size limit (MAX_INDEX_BYTES) it is read at.
 */
import { StrataError, bucketCorrupt } from '../../errors.js';
import { FRAGMENT_LIMIT } from '../../store/blocks/index.js';
import { BLOCK_SIZE } from '../../store/core/index.js';

export interface BlockPlace {
  /** SHA-256 of the uncompressed block. */
  digest: Buffer;
  /** Pack id (hex). */
  pack: string;
  offset: number;
  length: number;
  codec: number;
  hint: number;
}

const INDEX_MAGIC = Buffer.from('STRATAIX');
const PACK_MAGIC = Buffer.from('STRATAPK');
const INDEX_ENTRY = 52;
const PACK_ENTRY = 48;

/** Blocks one index names at most (push splits larger pushes): 4 GiB of blocks, read and held at once. */
export const MAX_INDEX_ENTRIES = 1 << 20;
/** The largest index object: as many packs as entries at worst. */
export const MAX_INDEX_BYTES = 20 + (32 + INDEX_ENTRY) * MAX_INDEX_ENTRIES;

/**
 * The most a whole pack is read at (remote check --read-data): far above
 * push's 16 MiB default, and the held copy of a pack stays bounded.
 */
export const MAX_PACK_BYTES = 1 << 30;

/** Why a fragment's codec, length or hint cannot be one strata wrote, or undefined. */
function badFragment(length: number, codec: number, hint: number): string | undefined {
  if (!Number.isSafeInteger(hint) || hint < 0) return `hint ${hint}`;
  if (codec === 0) return length === BLOCK_SIZE ? undefined : `a raw fragment of ${length} bytes`;
  if (codec !== 1 && codec !== 2) return `codec ${codec}`;
  // A block is stored compressed only when it shrinks to FRAGMENT_LIMIT (codecs.ts); longer is not a fragment, and costs a decoder more.
  if (length === 0 || length > FRAGMENT_LIMIT) return `a compressed fragment of ${length} bytes`;
  return undefined;
}

/** One index object; at most MAX_INDEX_ENTRIES places (a push writes several), so no reader refuses what a push wrote. */
export function encodeIndex(places: readonly BlockPlace[]): Buffer {
  if (places.length > MAX_INDEX_ENTRIES) throw new StrataError('E_INTERNAL', `an index of ${places.length} entries, over ${MAX_INDEX_ENTRIES}: write several`);
  const packs = [...new Set(places.map((p) => p.pack))].sort();
  const packNo = new Map(packs.map((p, i) => [p, i]));
  const out = Buffer.alloc(8 + 4 + 4 + 32 * packs.length + 4 + INDEX_ENTRY * places.length);
  let at = INDEX_MAGIC.copy(out, 0);
  at = out.writeUInt32LE(1, at);
  at = out.writeUInt32LE(packs.length, at);
  for (const p of packs) at += Buffer.from(p, 'hex').copy(out, at);
  at = out.writeUInt32LE(places.length, at);
  for (const e of places) {
    at += e.digest.copy(out, at);
    at = out.writeUInt32LE(packNo.get(e.pack)!, at);
    at = out.writeUInt32LE(e.offset, at);
    at = out.writeUInt16LE(e.length, at);
    at = out.writeUInt8(e.codec, at);
    at = out.writeUInt8(0, at);
    at = out.writeDoubleLE(e.hint, at);
  }
  return out;
}

/** The index objects for any number of places: one per MAX_INDEX_ENTRIES, each with the places it names. */
export function encodeIndexes(places: readonly BlockPlace[]): { bytes: Buffer; places: readonly BlockPlace[] }[] {
  const out: { bytes: Buffer; places: readonly BlockPlace[] }[] = [];
  for (let i = 0; i < places.length; i += MAX_INDEX_ENTRIES) {
    const part = places.slice(i, i + MAX_INDEX_ENTRIES);
    out.push({ bytes: encodeIndex(part), places: part });
  }
  return out;
}

export function decodeIndex(b: Buffer, name: string): BlockPlace[] {
  const bad = (why: string) => bucketCorrupt(`remote index ${name} is malformed: ${why}`, { index: name });
  if (b.length < 20 || !b.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('no STRATAIX header');
  if (b.readUInt32LE(8) !== 1) throw bad(`version ${b.readUInt32LE(8)}, this strata reads 1`);
  const packCount = b.readUInt32LE(12);
  let at = 16;
  if (b.length < at + 32 * packCount + 4) throw bad('truncated pack list');
  const packs: string[] = [];
  for (let i = 0; i < packCount; i++, at += 32) {
    packs.push(b.toString('hex', at, at + 32));
    if (i > 0 && packs[i] <= packs[i - 1]) throw bad(`pack list is not sorted and distinct at ${i}`);
  }
  const n = b.readUInt32LE(at);
  at += 4;
  if (n > MAX_INDEX_ENTRIES) throw bad(`${n} entries, over the ${MAX_INDEX_ENTRIES} an index holds`);
  if (b.length !== at + INDEX_ENTRY * n) throw bad(`${b.length} bytes for ${n} entries`);
  const out: BlockPlace[] = new Array(n);
  const used = new Uint8Array(packCount);
  for (let i = 0; i < n; i++, at += INDEX_ENTRY) {
    const p = b.readUInt32LE(at + 32);
    if (p >= packCount) throw bad(`entry ${i} names pack ${p} of ${packCount}`);
    used[p] = 1;
    const why = badFragment(b.readUInt16LE(at + 40), b.readUInt8(at + 42), b.readDoubleLE(at + 44)) ?? (b.readUInt8(at + 43) !== 0 ? 'padding that is not zero' : undefined);
    if (why) throw bad(`entry ${i} has ${why}`);
    out[i] = {
      digest: Buffer.from(b.subarray(at, at + 32)),
      pack: packs[p],
      offset: b.readUInt32LE(at + 36),
      length: b.readUInt16LE(at + 40),
      codec: b.readUInt8(at + 42),
      hint: b.readDoubleLE(at + 44),
    };
  }
  if (used.includes(0)) throw bad(`pack ${packs[used.indexOf(0)]} is listed but holds no entry`);
  return out;
}

/** The trailer that ends a pack whose fragments are `places` (pack ids ignored). */
/** The bytes of the trailer of a pack of `count` fragments. */
export const packTrailerBytes = (count: number): number => PACK_ENTRY * count + 4 + 8;

export function encodePackTrailer(places: readonly Omit<BlockPlace, 'pack'>[]): Buffer {
  const out = Buffer.alloc(packTrailerBytes(places.length));
  let at = 0;
  for (const e of places) {
    at += e.digest.copy(out, at);
    at = out.writeUInt32LE(e.offset, at);
    at = out.writeUInt16LE(e.length, at);
    at = out.writeUInt8(e.codec, at);
    at = out.writeUInt8(0, at);
    at = out.writeDoubleLE(e.hint, at);
  }
  at = out.writeUInt32LE(places.length, at);
  PACK_MAGIC.copy(out, at);
  return out;
}

/**
 * The bytes a pack's trailer takes, from the pack's last 12 bytes or more
 * (to read only the trailer of a pack: its end, then this many bytes).
 */
export function packTrailerLength(tail: Buffer, pack: string): number {
  if (tail.length < 12 || !tail.subarray(tail.length - 8).equals(PACK_MAGIC)) throw bucketCorrupt(`remote pack ${pack} is malformed: no STRATAPK trailer`, { pack });
  return 12 + PACK_ENTRY * tail.readUInt32LE(tail.length - 12);
}

/**
 * The blocks a pack object says it holds: `b` is the whole pack, or its
 * last bytes (at least its trailer) when `size`, the pack's, is given.
 */
export function decodePackTrailer(b: Buffer, pack: string, size = b.length): BlockPlace[] {
  const bad = (why: string) => bucketCorrupt(`remote pack ${pack} is malformed: ${why}`, { pack });
  const trailer = packTrailerLength(b, pack);
  const n = (trailer - 12) / PACK_ENTRY;
  // Where the fragments end, in the pack; and where the trailer starts, in b.
  const start = size - trailer;
  if (start < 0 || trailer > b.length) throw bad(`trailer of ${n} entries is longer than the pack`);
  const out: BlockPlace[] = [];
  for (let i = 0, at = b.length - trailer; i < n; i++, at += PACK_ENTRY) {
    const e = { digest: Buffer.from(b.subarray(at, at + 32)), pack, offset: b.readUInt32LE(at + 32), length: b.readUInt16LE(at + 36), codec: b.readUInt8(at + 38), hint: b.readDoubleLE(at + 40) };
    const why = badFragment(e.length, e.codec, e.hint) ?? (b.readUInt8(at + 39) !== 0 ? 'padding that is not zero' : undefined);
    if (why) throw bad(`entry ${i} has ${why}`);
    if (e.offset + e.length > start) throw bad(`entry ${i} runs past the fragments`);
    out.push(e);
  }
  return out;
}
