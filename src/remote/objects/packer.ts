/**
 * Builds packs from blocks and uploads them: each block compressed on its
 * own (zstd by default; the raw block where it does not shrink, or where
 * this build cannot compress), fragments back to back, the trailer
 * (index-file.ts) last, the pack named by the SHA-256 of all of it.
 *
 * Each add() is one batch, compressed off the event loop (compressBatch)
 * while the caller reads and hashes the next one and earlier packs upload;
 * batches join packs in the order they were added. A few packs go up at
 * once; finish() returns only when every pack is
 * complete in the bucket, with the places of all blocks added: the caller
 * may then write the index that names them (write order, layout.ts).
 */
import { canCompress, CODEC_IDS, compressBatch, type CodecSpec } from '../../store/blocks/index.js';
import { BLOCK_SIZE } from '../../store/core/index.js';
import { encodePackTrailer, type BlockPlace } from './index-file.js';
import { sha256Hex } from './layout.js';
import type { Remote } from '../remote.js';

export interface PackerOptions {
  /** A pack is sealed once its fragments reach this (default 16 MiB, restic's size). */
  packBytes?: number;
  /** null: blocks go raw. Default zstd-3 where the native addon has it. */
  compress?: CodecSpec | null;
  /** Packs uploading at once (default 3). */
  uploads?: number;
  /** Told of each pack once it is in the bucket. */
  onPack?: (bytes: number) => void;
}

export interface PackBlock {
  digest: Buffer;
  hint: number;
  data: Uint8Array;
}

export interface Fragment {
  digest: Buffer;
  hint: number;
  codec: number;
  bytes: Uint8Array;
}

export interface Packer {
  /** Adds blocks (copied: the caller may reuse the buffers at once); waits while too many packs are uploading. */
  add(blocks: readonly PackBlock[]): Promise<void>;
  /** Adds fragments already compressed (`remote gc` moving them from a sparse pack), as they are. */
  addFragments(frags: readonly Fragment[]): Promise<void>;
  /** Seals the last pack, waits for every upload; the places of every block added. */
  finish(): Promise<BlockPlace[]>;
  readonly stats: { packs: number; blocks: number; rawBytes: number; packedBytes: number };
}

export function makePacker(remote: Remote, opts: PackerOptions = {}): Packer {
  const packBytes = opts.packBytes ?? 16 * 1024 * 1024;
  const spec = opts.compress === undefined ? (canCompress('zstd') ? { codec: 'zstd' as const, level: 3 } : null) : opts.compress;
  const uploads = opts.uploads ?? 3;
  const places: BlockPlace[] = [];
  const stats = { packs: 0, blocks: 0, rawBytes: 0, packedBytes: 0 };
  let pieces: Buffer[] = [];
  let entries: Omit<BlockPlace, 'pack'>[] = [];
  let size = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  const seal = () => {
    if (entries.length === 0) return;
    const body = Buffer.concat([...pieces, encodePackTrailer(entries)]);
    const id = sha256Hex(body);
    const mine = entries;
    pieces = [];
    entries = [];
    size = 0;
    const p = remote.bucket.put(remote.keys.pack(id), body).then(
      () => {
        for (const e of mine) places.push({ ...e, pack: id });
        stats.packs++;
        stats.packedBytes += body.length;
        opts.onPack?.(body.length);
      },
      (e: unknown) => {
        failure ??= e;
      },
    );
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  /** `own`: buf is the packer's own (a batch's output), kept by a view; else the bytes are copied. */
  const append = (b: Pick<PackBlock, 'digest' | 'hint'>, buf: Uint8Array, at: number, length: number, codec: number, own = false) => {
    // A view, not a copy, of a batch's output: a Buffer per fragment was tens of thousands of allocations per push.
    pieces.push(own ? Buffer.from(buf.buffer, buf.byteOffset + at, length) : Buffer.from(buf.subarray(at, at + length)));
    entries.push({ digest: b.digest, offset: size, length, codec, hint: b.hint });
    size += length;
    stats.blocks++;
    stats.rawBytes += BLOCK_SIZE;
    if (size >= packBytes) seal();
  };

  // The batch being compressed, if any; its fragments join the pack when it settles.
  let compressing: Promise<void> | undefined;
  const settled = async () => {
    if (compressing) await compressing.catch(() => undefined);
    compressing = undefined;
    if (failure) throw failure;
  };

  const room = async () => {
    while (inFlight.size >= uploads) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  return {
    stats,
    async addFragments(frags) {
      await settled();
      for (const f of frags) append(f, f.bytes, 0, f.bytes.length, f.codec);
      await room();
    },
    async add(blocks) {
      await settled();
      if (!spec) {
        for (const b of blocks) append(b, b.data, 0, BLOCK_SIZE, 0);
        await room();
        return;
      }
      // Copied: the caller reuses its buffers as soon as this returns.
      const src = Buffer.allocUnsafe(blocks.length * BLOCK_SIZE);
      blocks.forEach((b, i) => src.set(b.data, i * BLOCK_SIZE));
      const keys = blocks.map(({ digest, hint }) => ({ digest, hint }));
      const codec = CODEC_IDS[spec.codec];
      compressing = compressBatch(spec, src, blocks.length).then(({ out, sizes }) => {
        for (let i = 0; i < keys.length; i++) {
          if (sizes[i] === 0) append(keys[i], src, i * BLOCK_SIZE, BLOCK_SIZE, 0, true);
          else append(keys[i], out, i * BLOCK_SIZE, sizes[i], codec, true);
        }
      });
      // Not awaited here: the next add() waits for it, so one batch compresses while the caller makes the next.
      compressing.catch((e: unknown) => {
        failure ??= e;
      });
      await room();
    },
    async finish() {
      await settled();
      seal();
      await Promise.all(inFlight);
      if (failure) throw failure;
      return places;
    },
  };
}
