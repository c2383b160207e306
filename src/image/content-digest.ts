/**
 * An image's content digest: SHA-256 that two images share exactly when they
 * read the same bytes, whatever their layering, slots or store. A send stream
 * names its base by it (as ZFS names a snapshot by GUID), and its trailer
 * carries the sent image's, which the receiver checks against what it built.
 *
 * Sparse, so a 1 TiB image with 1 GiB of data costs 1 GiB of hashing: the
 * image's non-zero blocks form maximal runs, and the digest is
 *
 *   SHA-256("strata-content-1" | size u64 | for each run: first u64 | count u64 | SHA-256(run bytes))
 *
 * Fixed-size entries per run keep it unambiguous; a run's own hash lets it be
 * fed a block at a time as blocks arrive. Bytes past the end of the last,
 * partial block count as zeros, as they read.
 *
 * SHA-256 rather than XXH3: a digest that decides whether a stream may apply
 * to a base must not be forgeable by someone who writes the stream, and
 * node:crypto's SHA-256 (OpenSSL, with the CPU's SHA extensions) hashes about
 * 2 GB/s here, far faster than blocks are read or decoded.
 */
import crypto from 'node:crypto';
import { BLOCK_SIZE, isFrozen, type OnProgress } from '../store/core/index.js';
import { isZeroBlock } from '../store/slots/index.js';
import type { Image } from './image.js';

export class ContentDigest {
  private readonly outer = crypto.createHash('sha256');
  private run: crypto.Hash | null = null;
  private runFirst = 0;
  private runCount = 0;
  private readonly blocks: number;

  constructor(private readonly size: number) {
    this.blocks = Math.ceil(size / BLOCK_SIZE);
    const head = Buffer.alloc(16 + 8);
    head.write('strata-content-1', 0, 'latin1');
    head.writeBigUInt64LE(BigInt(size), 16);
    this.outer.update(head);
  }

  /** Blocks [first, first + count) as `data` holds them; calls must come in increasing block order. */
  add(first: number, count: number, data: Buffer): void {
    const tail = this.size % BLOCK_SIZE;
    if (tail !== 0 && first + count === this.blocks) data.fill(0, (count - 1) * BLOCK_SIZE + tail, count * BLOCK_SIZE);
    let spanStart = -1;
    for (let k = 0; k <= count; k++) {
      const zero = k === count || isZeroBlock(data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
      if (!zero && spanStart < 0) spanStart = k;
      if (zero && spanStart >= 0) {
        this.extend(first + spanStart, k - spanStart, data.subarray(spanStart * BLOCK_SIZE, k * BLOCK_SIZE));
        spanStart = -1;
      }
      if (zero && k < count) this.endRun();
    }
  }

  private extend(first: number, count: number, bytes: Buffer): void {
    if (this.run && this.runFirst + this.runCount !== first) this.endRun();
    if (!this.run) {
      this.run = crypto.createHash('sha256');
      this.runFirst = first;
      this.runCount = 0;
    }
    this.run.update(bytes);
    this.runCount += count;
  }

  private endRun(): void {
    if (!this.run) return;
    const e = Buffer.alloc(16);
    e.writeBigUInt64LE(BigInt(this.runFirst), 0);
    e.writeBigUInt64LE(BigInt(this.runCount), 8);
    this.outer.update(e);
    this.outer.update(this.run.digest());
    this.run = null;
  }

  /** `sha256:` and 64 hex digits. */
  digest(): string {
    this.endRun();
    return `sha256:${this.outer.digest('hex')}`;
  }
}

/** Blocks read at once: 4 MiB. */
const CHUNK_BLOCKS = 1024;

/** The content digest of an open image, reading only its data extents. */
export function contentDigestOf(img: Pick<Image, 'size' | 'extents' | 'readInto'>, onProgress?: OnProgress): string {
  const d = new ContentDigest(img.size);
  const scratch = Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_SIZE);
  for (const ext of img.size === 0 ? [] : img.extents(0, img.size)) {
    if (ext.kind !== 'data') continue;
    const end = ext.offset + ext.length;
    for (let off = ext.offset; off < end; off += CHUNK_BLOCKS * BLOCK_SIZE) {
      const n = Math.min(CHUNK_BLOCKS * BLOCK_SIZE, end - off);
      const blocks = Math.ceil(n / BLOCK_SIZE);
      img.readInto(off, n, scratch);
      d.add(off / BLOCK_SIZE, blocks, scratch.subarray(0, blocks * BLOCK_SIZE));
      onProgress?.(off + n, img.size);
    }
  }
  return d.digest();
}

/**
 * The content digest of a frozen image, as recorded when it was received
 * (receive.ts checks it against what it built, and a frozen image never
 * changes), else read: a chain of incremental streams (mon, tue, wed, ...)
 * then reads no base whole again, as ZFS trusts a snapshot's GUID.
 */
export function imageContentDigest(img: Image): string {
  const src = img.record.source;
  if (isFrozen(img.record) && src?.format === 'strata-send' && typeof src.contentDigest === 'string' && /^sha256:[0-9a-f]{64}$/.test(src.contentDigest)) return src.contentDigest;
  return contentDigestOf(img);
}
