/**
 * `strata receive NAME`: a send stream (send-stream.ts) becomes a new frozen
 * image, built under a hidden name like any import (import.ts) and given its
 * name only once the whole stream has checked: the stream's SHA-256 over
 * every byte, and the content digest of what was built against the one the
 * sender took. A cut, damaged or forged stream, a missing or different base,
 * Ctrl-C or a kill leave no image (the hidden one is dropped, now or by the
 * next recovery) and every block it placed is freed.
 *
 * An incremental stream applies to a base this store has with the same
 * content: the received image is a layer over it, holding only the blocks
 * the stream carries. Blocks go through the image's flush, so they
 * deduplicate against everything in the store.
 */
import crypto from 'node:crypto';
import { StrataError, badInput, isStrataError } from '../errors.js';
import { decompressBlock, CODEC_IDS } from '../store/blocks/index.js';
import { assertNameFree, listVisibleImages } from '../store/images/index.js';
import { resolveImage } from '../image/refs.js';
import { imageName, faultPoint, BLOCK_SIZE, isFrozen, type ImageRecord, type OnProgress } from '../store/core/index.js';
import type { Store } from '../store/core/index.js';
import { openImage } from '../image/image.js';
import { ContentDigest, contentDigestOf, imageContentDigest } from '../image/content-digest.js';
import { beginImport } from './import.js';
import {
  DATA_HEAD_BYTES,
  DIGEST_BYTES,
  MAX_RECORD_BLOCKS,
  PREAMBLE_BYTES,
  RECORD,
  RUN_BYTES,
  TRAILER_BYTES,
  badStream,
  checkPayloadLength,
  decodeHeader,
  decodePreamble,
  readCount,
  type StreamHeader,
  type StreamPart,
  type StreamSummary,
} from './send-stream.js';

export type ReceiveResult = StreamSummary;

/**
 * Reads exact byte counts from a stream of chunks, hashing all it hands out.
 * Never holds more than one request plus one chunk: requests are bounded by
 * the format (a record of at most 4 MiB), not by what a stream declares.
 */
const SMALL_READ = 64 * 1024;

class StreamReader {
  private readonly it: AsyncIterator<Buffer>;
  private chunks: Buffer[] = [];
  private held = 0;
  private ended = false;
  readonly hash = crypto.createHash('sha256');
  bytes = 0;
  private large = Buffer.alloc(0);

  constructor(input: AsyncIterable<Buffer>) {
    this.it = input[Symbol.asyncIterator]();
  }

  /**
   * Exactly `n` bytes, or E_BAD_STREAM naming `part` if the stream ends
   * first. A read of more than SMALL_READ bytes is valid only until the next
   * such read, which reuses its memory.
   */
  async read(n: number, part: StreamPart, hashed = true): Promise<Buffer> {
    while (this.held < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        this.chunks.push(b);
        this.held += b.length;
      }
    }
    if (this.held < n) throw badStream(`it ends early, in its ${part} (${this.bytes + this.held} bytes in all)`, { part, bytes: this.bytes + this.held });
    let out: Buffer;
    if (n === 0) out = Buffer.alloc(0);
    else if (this.chunks[0].length >= n) {
      out = this.chunks[0].subarray(0, n);
      this.chunks[0] = this.chunks[0].subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
    } else {
      // Gathered into one buffer; a large one (a record's payload) into the same buffer each time,
      // not a new 4 MiB one per record for the garbage collector.
      if (n > SMALL_READ && this.large.length < n) this.large = Buffer.allocUnsafe(n);
      out = n > SMALL_READ ? this.large.subarray(0, n) : Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0];
        const take = Math.min(c.length, n - at);
        c.copy(out, at, 0, take);
        at += take;
        if (take === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    this.held -= n;
    if (hashed) this.hash.update(out);
    this.bytes += n;
    return out;
  }

  /** Whether anything follows what was read. */
  async atEnd(): Promise<boolean> {
    if (this.held > 0) return false;
    while (!this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.held += r.value.length;
        return false;
      }
    }
    return true;
  }
}

/** The local image an incremental stream applies to: `--base`, else one received as that content, else one of that name. */
function findBase(store: Store, want: NonNullable<StreamHeader['base']>, given: string | undefined): ImageRecord {
  const shown = `${want.name} (${want.content.slice(0, 19)}…)`;
  const candidates: ImageRecord[] = [];
  if (given !== undefined) candidates.push(resolveImage(store, given));
  else {
    const all = listVisibleImages(store).filter(isFrozen);
    candidates.push(...all.filter((r) => r.source?.contentDigest === want.content), ...all.filter((r) => r.name === want.name && r.source?.contentDigest !== want.content));
    if (candidates.length === 0) {
      throw new StrataError('E_NOT_FOUND', `the stream is incremental from ${shown}, which this store does not have: receive a full stream of it first, or name a copy with --base`, {
        base: want.name,
        content: want.content,
      });
    }
  }
  for (const rec of candidates) {
    if (!isFrozen(rec)) throw new StrataError('E_BASE_MISMATCH', `base ${rec.name} is a writable leaf, whose content may change: the stream applies only to a frozen image`, { image: rec.name });
    if (rec.virtualSize !== want.size) continue;
    const img = openImage(store, rec.name);
    try {
      if (imageContentDigest(img) === want.content) return rec;
    } finally {
      img.close();
    }
  }
  const names = candidates.map((r) => r.name).join(', ');
  throw new StrataError('E_BASE_MISMATCH', `the stream is incremental from ${shown}, and ${names} here has other content: it applies only to an identical copy of its base`, {
    base: want.name,
    content: want.content,
    candidates: candidates.map((r) => r.name),
  });
}

export async function receiveStream(
  store: Store,
  input: AsyncIterable<Buffer>,
  name: string,
  opts: { base?: string; onProgress?: OnProgress } = {},
): Promise<ReceiveResult> {
  // Said before a byte is read or a base is hashed; beginImport checks again in its transaction.
  assertNameFree(store, imageName(name));
  const r = new StreamReader(input);
  const pre = await r.read(PREAMBLE_BYTES, 'header');
  const header = decodeHeader(await r.read(decodePreamble(pre), 'header'));
  const size = header.image.size;
  if (!header.base && opts.base !== undefined) throw badInput(`--base ${opts.base} is for an incremental stream, and this one is full (of ${header.image.name})`, { base: opts.base });
  const base = header.base ? findBase(store, header.base, opts.base) : null;
  const source = { format: 'strata-send', image: header.image.name, createdAt: header.image.createdAt, ...(header.base ? { base: header.base.name } : {}) };
  const target = beginImport(store, name, size, { parent: base?.name, source });
  let done: Omit<ReceiveResult, 'name'>;
  try {
    const blocks = Math.ceil(size / BLOCK_SIZE);
    // A full stream brings every data block in order: its content digest is taken on the way.
    const digest = base ? null : new ContentDigest(size);
    // Decoded records are lent to the image (no copy) and come back once a flush has emptied it,
    // as an import's read buffers do (raw.ts copySourceInto).
    const idle: Buffer[] = [];
    const lent: Buffer[] = [];
    let next = 0;
    let dataBlocks = 0;
    let zeroBlocks = 0;
    const place = (first: number, count: number, what: StreamPart) => {
      if (first < next) throw badStream(`a record for block ${first} after block ${next - 1} (records go in increasing order)`, { part: what });
      if (first + count > blocks) throw badStream(`a record for blocks ${first}-${first + count - 1} of an image of ${blocks}`, { part: what });
      next = first + count;
    };
    for (;;) {
      const type = (await r.read(1, 'extent table'))[0];
      if (type === RECORD.end) break;
      if (type === RECORD.zero || type === RECORD.hole) {
        const b = await r.read(RUN_BYTES - 1, 'extent table');
        const first = readCount(b, 0, blocks, 'a run starting at block', 'extent table');
        const count = readCount(b, 8, blocks, 'a run of', 'extent table');
        if (count === 0) throw badStream('an empty zero run', { part: 'extent table' });
        place(first, count, 'extent table');
        // Over a base these blocks must read zero; a new image reads zero there already.
        if (base) target.img.writeZeroes(first * BLOCK_SIZE, Math.min(size, (first + count) * BLOCK_SIZE) - first * BLOCK_SIZE);
        zeroBlocks += count;
        opts.onProgress?.(Math.min(size, next * BLOCK_SIZE), size);
        continue;
      }
      if (type !== RECORD.data) throw badStream(`an unknown record type 0x${type.toString(16).padStart(2, '0')} at byte ${r.bytes - 1}`, { part: 'extent table' });
      const h = await r.read(DATA_HEAD_BYTES - 1, 'extent table');
      const first = readCount(h, 0, blocks, 'a data record starting at block', 'extent table');
      const count = h.readUInt16LE(8);
      if (count === 0 || count > MAX_RECORD_BLOCKS) throw badStream(`a data record of ${count} blocks`, { part: 'extent table' });
      place(first, count, 'extent table');
      const table = await r.read(2 * count, 'extent table');
      let total = 0;
      for (let k = 0; k < count; k++) {
        checkPayloadLength(table.readUInt16LE(2 * k));
        total += table.readUInt16LE(2 * k);
      }
      const payload = await r.read(total, 'block data');
      const scratch = idle.pop() ?? Buffer.allocUnsafe(MAX_RECORD_BLOCKS * BLOCK_SIZE);
      lent.push(scratch);
      for (let k = 0, at = 0; k < count; k++) {
        const n = table.readUInt16LE(2 * k);
        if (n === BLOCK_SIZE) payload.copy(scratch, k * BLOCK_SIZE, at, at + n);
        else {
          try {
            decompressBlock(CODEC_IDS.zstd, payload, at, n, scratch, k * BLOCK_SIZE);
          } catch (e) {
            if (isStrataError(e, 'E_CORRUPT')) throw badStream(`block ${first + k} does not decode: ${e.message}`, { part: 'block data', block: first + k });
            throw e;
          }
        }
        at += n;
      }
      const data = scratch.subarray(0, count * BLOCK_SIZE);
      digest?.add(first, count, data);
      const end = Math.min(size, (first + count) * BLOCK_SIZE);
      target.img.write(first * BLOCK_SIZE, data.subarray(0, end - first * BLOCK_SIZE), true);
      if (target.img.dirtyBytes === 0) idle.push(...lent.splice(0));
      dataBlocks += count;
      faultPoint('receive.after-record');
      opts.onProgress?.(end, size);
    }
    const trailer = await r.read(TRAILER_BYTES - DIGEST_BYTES, 'trailer');
    const expected = r.hash.digest();
    const sent = await r.read(DIGEST_BYTES, 'trailer', false);
    if (!sent.equals(expected)) throw badStream('its SHA-256 does not match its content: the stream was damaged', { part: 'trailer' });
    if (!(await r.atEnd())) throw badStream('bytes follow its trailer', { part: 'trailer' });
    if (readCount(trailer, 0, blocks, 'a count of', 'trailer') !== dataBlocks || readCount(trailer, 8, blocks, 'a count of', 'trailer') !== zeroBlocks) {
      throw badStream('its trailer counts other blocks than it holds', { part: 'trailer' });
    }
    const content = `sha256:${trailer.subarray(16, 16 + DIGEST_BYTES).toString('hex')}`;
    faultPoint('receive.before-verify');
    // Over a base the result is read back whole: what the base lent must add up to what was sent.
    target.img.flush();
    const built = digest ? digest.digest() : contentDigestOf(target.img);
    if (built !== content) {
      throw new StrataError('E_BAD_STREAM', `the received image's content digest ${built} is not the sender's ${content}`, { part: 'trailer', built, sent: content });
    }
    done = { base: base?.name ?? null, virtualSize: size, streamBytes: r.bytes, dataBlocks, zeroBlocks, contentDigest: content };
  } catch (e) {
    target.abandon();
    throw e;
  }
  // finish() drops the hidden image itself if it fails. The digest recorded lets the next
  // incremental stream find this image as its base without a guess by name.
  const rec = target.finish(undefined, { ...source, contentDigest: done.contentDigest });
  return { name: rec.name, ...done };
}
