/**
 * `strata send [-i FROM] SNAP`: a frozen image as a send stream
 * (send-stream.ts), whole or as the blocks that differ from FROM.
 *
 * Which blocks differ is decided from the maps alone (diffImages), as
 * `strata diff` does; only those blocks are read. Data blocks are compressed
 * in batches on the addon's threads (compressBatch), the next batch read
 * while the last one compresses.
 */
import crypto from 'node:crypto';
import { StrataError, badInput } from '../errors.js';
import { canCompress, compressBatch, type CompressedBatch } from '../store/blocks/index.js';
import { isFrozen, BLOCK_SIZE, type OnProgress } from '../store/core/index.js';
import type { Store } from '../store/core/index.js';
import { openImage, type Image } from '../image/image.js';
import { diffImages } from '../image/inspect.js';
import { ContentDigest, imageContentDigest } from '../image/content-digest.js';
import type { Extent } from '../image/device.js';
import { openOutput, type Output } from './output.js';
import { MAX_RECORD_BLOCKS, RECORD, encodeDataHead, encodePreamble, encodeRun, encodeTrailerBody, type StreamHeader, type StreamSummary } from './send-stream.js';

export interface SendResult extends StreamSummary {
  /** Bytes the data blocks take compressed in the stream (their payloads). */
  payloadBytes: number;
}

function openFrozen(store: Store, name: string, role: string): Image {
  const img = openImage(store, name);
  if (!isFrozen(img.record)) {
    img.close();
    throw badInput(`cannot send ${role} ${name}: it is a writable leaf, which may change while it is read; snapshot it first (strata snapshot ${name} NAME) and send the snapshot`, { image: name });
  }
  return img;
}

/** The extents of `img` to send: all of it, or where it differs from `base`, each with the kind it has in `img`. */
function extentsToSend(store: Store, img: Image, base: Image | null): Extent[] {
  if (img.size === 0) return [];
  if (!base) return img.extents(0, img.size);
  const out: Extent[] = [];
  for (const d of diffImages(store, base.name, img.name).extents) {
    const end = Math.min(d.offset + d.length, img.size);
    if (d.offset < end) out.push(...img.extents(d.offset, end - d.offset));
  }
  return out;
}

export async function sendImage(store: Store, name: string, to: string, opts: { from?: string; onProgress?: OnProgress } = {}): Promise<SendResult> {
  const img = openFrozen(store, name, 'image');
  let base: Image | null = null;
  let out: Output | undefined;
  try {
    base = opts.from === undefined ? null : openFrozen(store, opts.from, 'base');
    // Refused before anything is written: without the codec every block would go out raw, silently four times larger.
    if (!canCompress('zstd')) throw new StrataError('E_UNSUPPORTED', 'strata send needs the native addon with libzstd to compress blocks', {});
    const header: StreamHeader = {
      format: 'strata-send',
      image: { name: img.name, size: img.size, createdAt: new Date(img.record.createdAt).toISOString() },
      base: base ? { name: base.name, size: base.size, content: imageContentDigest(base) } : null,
      codec: 'zstd',
      blockSize: BLOCK_SIZE,
    };
    const extents = extentsToSend(store, img, base);
    out = openOutput(to);
    const w = streamWriter(out);
    w.put(encodePreamble(header));
    // A full stream carries every data block in order, so the content digest is taken as they go; an incremental one reads the rest too.
    const digest = base ? null : new ContentDigest(img.size);
    let dataBlocks = 0;
    let zeroBlocks = 0;
    let payloadBytes = 0;
    const spec = { codec: 'zstd' as const, level: 3 };
    /** The batch being compressed while the next is read: two buffers, in turn. */
    const buffers = [Buffer.allocUnsafe(MAX_RECORD_BLOCKS * BLOCK_SIZE), Buffer.allocUnsafe(MAX_RECORD_BLOCKS * BLOCK_SIZE)];
    let turn = 0;
    let pending: { first: number; count: number; src: Buffer; done: Promise<CompressedBatch> } | null = null;
    const drain = async () => {
      if (!pending) return;
      const { first, count, src, done } = pending;
      pending = null;
      const { out: z, sizes } = await done;
      const lengths: number[] = [];
      for (let k = 0; k < count; k++) lengths.push(sizes[k] > 0 ? sizes[k] : BLOCK_SIZE);
      w.put(encodeDataHead(first, count, lengths));
      for (let k = 0; k < count; k++) {
        const payload = sizes[k] > 0 ? z.subarray(k * BLOCK_SIZE, k * BLOCK_SIZE + sizes[k]) : src.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE);
        w.put(payload);
        payloadBytes += payload.length;
      }
      // Out now: the payloads are views of buffers the next batches reuse.
      w.flush();
      dataBlocks += count;
      opts.onProgress?.(Math.min(img.size, (first + count) * BLOCK_SIZE), img.size);
    };
    for (const ext of extents) {
      const first = ext.offset / BLOCK_SIZE;
      const count = Math.ceil(ext.length / BLOCK_SIZE);
      if (ext.kind !== 'data') {
        await drain();
        w.put(encodeRun(ext.kind === 'zero' ? RECORD.zero : RECORD.hole, first, count));
        zeroBlocks += count;
        continue;
      }
      for (let b = first; b < first + count; b += MAX_RECORD_BLOCKS) {
        const n = Math.min(MAX_RECORD_BLOCKS, first + count - b);
        const src = buffers[turn];
        turn ^= 1;
        const bytes = Math.min(n * BLOCK_SIZE, img.size - b * BLOCK_SIZE);
        img.readInto(b * BLOCK_SIZE, bytes, src);
        // The last block's bytes past the image's end read zero; the stream says so too.
        src.fill(0, bytes, n * BLOCK_SIZE);
        digest?.add(b, n, src.subarray(0, n * BLOCK_SIZE));
        const done = compressBatch(spec, src, n);
        // The other buffer's batch goes out now; this one compresses meanwhile.
        await drain();
        pending = { first: b, count: n, src, done };
      }
    }
    await drain();
    const content = digest ? digest.digest() : imageContentDigest(img);
    w.finish(encodeTrailerBody(dataBlocks, zeroBlocks, content));
    out.commit();
    out = undefined;
    return { name: img.name, base: base?.name ?? null, virtualSize: img.size, streamBytes: w.bytes, dataBlocks, zeroBlocks, payloadBytes, contentDigest: content };
  } finally {
    out?.abort();
    img.close();
    base?.close();
  }
}

/** Writes a stream through `out`, hashing every byte for the trailer's digest. Small pieces are gathered into one write. */
function streamWriter(out: Output) {
  const hash = crypto.createHash('sha256');
  const pieces: Buffer[] = [];
  let held = 0;
  let bytes = 0;
  const flush = () => {
    if (held === 0) return;
    const buf = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, held);
    hash.update(buf);
    out.write(buf, bytes);
    bytes += buf.length;
    pieces.length = 0;
    held = 0;
  };
  return {
    flush,
    put(b: Buffer) {
      pieces.push(b);
      held += b.length;
      if (held >= 1024 * 1024) flush();
    },
    finish(trailerBody: Buffer) {
      pieces.push(trailerBody);
      held += trailerBody.length;
      flush();
      const d = hash.digest();
      out.write(d, bytes);
      bytes += d.length;
    },
    get bytes() {
      return bytes;
    },
  };
}
