/**
 * A zstd-compressed qcow2 cluster may hold several zstd frames: qemu's reader
 * decodes frame after frame until the cluster is full, so strata must too.
 * The file is one qemu-img made, with its compressed cluster replaced by two
 * hand-built frames (RLE blocks, 32 KiB each); qemu-img is the oracle.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { openQcow2 } from '../../src/formats/qcow2/index.js';
import { hasQemu, patch, qemuImg, qemuImgStatus, qemuIo, rawOf, tmp } from './qcow2-helpers.js';

const KiB = 1024;

/** One zstd frame: single segment, 2-byte content size, one RLE block of `n` copies of `byte`. */
function rleFrame(byte: number, n: number): Buffer {
  const f = Buffer.alloc(11);
  f.writeUInt32LE(0xfd2fb528, 0);
  f[4] = 0x60; // content size flag 1 (2 bytes), single segment
  f.writeUInt16LE(n - 256, 5);
  const bh = 1 | (1 << 1) | (n << 3); // last block, RLE, regenerated size n
  f[7] = bh & 0xff;
  f[8] = (bh >> 8) & 0xff;
  f[9] = (bh >> 16) & 0xff;
  f[10] = byte;
  return f;
}

/** A skippable frame (magic 0x184d2a5X): qemu's zstd skips it. */
function skippable(n: number): Buffer {
  const f = Buffer.alloc(8 + n, 0xee);
  f.writeUInt32LE(0x184d2a53, 0);
  f.writeUInt32LE(n, 4);
  return f;
}

/** Host offset and length (whole sectors) of guest cluster 0's compressed data. */
function compressedCluster0(file: string): { offset: number; length: number } {
  const b = readFileSync(file);
  const clusterBits = b.readUInt32BE(20);
  const l1 = Number(b.readBigUInt64BE(40));
  const l2 = Number(b.readBigUInt64BE(l1) & ((1n << 56n) - 1n) & ~0x1ffn);
  const e = b.readBigUInt64BE(l2);
  expect(e >> 62n).toBe(1n); // compressed
  const x = 62n - BigInt(clusterBits - 8);
  const offset = Number(e & ((1n << x) - 1n));
  const sectors = Number((e >> x) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1;
  return { offset, length: sectors * 512 - (offset % 512) };
}

describe.skipIf(!hasQemu)('qcow2 zstd clusters of several frames', () => {
  let t: ReturnType<typeof tmp>;
  beforeAll(() => (t = tmp()));
  afterAll(() => t.cleanup());

  /** A 1 MiB qcow2 (64 KiB clusters, zstd) whose cluster 0 is compressed and then replaced by `frames`. */
  function withFrames(name: string, frames: Buffer): string {
    const f = join(t.dir, name);
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', f, '1M');
    // Incompressible half: the compressed data spans many sectors, room for any frames below.
    const src = join(t.dir, `${name}.src`);
    writeFileSync(src, Buffer.concat([Buffer.from(Array.from({ length: 32 * KiB }, (_, i) => (i * 7919) % 251)), Buffer.alloc(32 * KiB, 3)]));
    qemuIo(f, [`write -c -s ${src} 0 64k`]);
    const c = compressedCluster0(f);
    expect(frames.length).toBeLessThanOrEqual(c.length);
    patch(f, c.offset, Buffer.concat([frames, Buffer.alloc(c.length - frames.length)]));
    return f;
  }

  it('two frames read as the one cluster they make together, as qemu-img reads them', () => {
    const f = withFrames('two.qcow2', Buffer.concat([rleFrame(0x11, 32 * KiB), rleFrame(0x22, 32 * KiB)]));
    const expected = Buffer.concat([Buffer.alloc(32 * KiB, 0x11), Buffer.alloc(32 * KiB, 0x22), Buffer.alloc(1024 * KiB - 64 * KiB)]);
    expect(rawOf(f, t.dir).equals(expected)).toBe(true);
    const r = openQcow2(f);
    try {
      expect(r.read(0, r.size).equals(expected)).toBe(true);
    } finally {
      r.close();
    }
  });

  it('four frames with a skippable frame between them', () => {
    const f = withFrames('four.qcow2', Buffer.concat([rleFrame(1, 16 * KiB), rleFrame(2, 16 * KiB), skippable(5), rleFrame(3, 16 * KiB), rleFrame(4, 16 * KiB)]));
    const expected = Buffer.concat([1, 2, 3, 4].map((b) => Buffer.alloc(16 * KiB, b)));
    expect(rawOf(f, t.dir).subarray(0, 64 * KiB).equals(expected)).toBe(true);
    const r = openQcow2(f);
    try {
      expect(r.read(0, 64 * KiB).equals(expected)).toBe(true);
    } finally {
      r.close();
    }
  });

  it('frames that end short of a cluster, or run past it, are refused with one line, as qemu-img refuses them', () => {
    for (const [name, frames, re] of [
      ['short.qcow2', rleFrame(0x11, 32 * KiB), /zstd frames inflate to 32768 bytes, then no further frame: not one cluster \(65536\)/],
      ['long.qcow2', Buffer.concat([rleFrame(0x11, 48 * KiB), rleFrame(0x22, 32 * KiB)]), /content size 32768 is more than the 16384 bytes left of the cluster/],
    ] as const) {
      const f = withFrames(name, frames);
      expect(qemuImgStatus('convert', '-O', 'raw', f, join(t.dir, 'out.raw')).status, `qemu-img reads ${name}`).not.toBe(0);
      const r = openQcow2(f);
      let err: unknown;
      try {
        r.read(0, 64 * KiB);
      } catch (e) {
        err = e;
      } finally {
        r.close();
      }
      expect(err).toBeInstanceOf(StrataError);
      expect((err as StrataError).code).toBe('E_BAD_FILE');
      expect((err as StrataError).message).toMatch(re);
    }
  });
});
