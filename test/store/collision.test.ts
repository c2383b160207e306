/**
 * Hash collisions must never hand one image another's data: the block index
 * is a filter, bytes are compared before a slot is shared.
 *
 * - A crafted XXH64 collision: two different 4 KiB blocks with the same full
 *   64-bit hash, built by inverting XXH64's lane rounds.
 * - A store whose hash function answers 42 for everything.
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openImage } from '../../src/image/image.js';
import { createImage } from '../../src/image/lifecycle.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { xxh64Full } from '../../src/store/core/hash.js';
import { openStore } from '../../src/store/core/store.js';
import { strata } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { tmpDir } from '../helpers/tmp.js';
import { liveSlots, refcountOf } from '../helpers/slots.js';
import { rng } from '../helpers/random.js';
import { beginImport } from '../../src/formats/import.js';
import { packedCounts } from '../../src/store/slots/slots.js';

const M64 = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M64;
const rotr = (x: bigint, r: bigint) => ((x >> r) | (x << (64n - r))) & M64;
/** XXH64's per-lane round: acc = rotl(acc + lane * PRIME64_2, 31) * PRIME64_1. */
const round = (acc: bigint, lane: bigint) => (rotl((acc + lane * P2) & M64, 31n) * P1) & M64;
/** Inverse of an odd number modulo 2^64 (Newton's iteration). */
function inv64(a: bigint): bigint {
  let x = a;
  for (let i = 0; i < 6; i++) x = (x * (2n - a * x)) & M64;
  return x;
}
const P1_INV = inv64(P1);
const P2_INV = inv64(P2);

/** The four accumulators (seed 0) after the first `stripes` 32-byte stripes of `b`. */
function accumulators(b: Buffer, stripes: number): bigint[] {
  const acc = [(P1 + P2) & M64, P2, 0n, (0n - P1) & M64];
  for (let s = 0; s < stripes; s++) for (let i = 0; i < 4; i++) acc[i] = round(acc[i], b.readBigUInt64LE(s * 32 + i * 8));
  return acc;
}

/** A block that differs from `a` and has the same XXH64: stripe 0 changed, stripe 1 solved, the rest equal. */
function collidingBlock(a: Buffer): Buffer {
  const b = Buffer.from(a);
  crypto.randomBytes(32).copy(b, 0);
  const want = accumulators(a, 2);
  const have = accumulators(b, 1);
  for (let i = 0; i < 4; i++) {
    // round(have, x) = want  <=>  have + x*P2 = rotr(want * P1^-1, 31)
    const x = (((rotr((want[i] * P1_INV) & M64, 31n) - have[i]) & M64) * P2_INV) & M64;
    b.writeBigUInt64LE(x, 32 + i * 8);
  }
  return b;
}

describe('hash collisions', () => {
  it('a crafted XXH64 collision: both blocks read back their own bytes, in two images and in one', async () => {
    const a = crypto.randomBytes(4096);
    const b = collidingBlock(a);
    expect(a.equals(b)).toBe(false);
    expect(await xxh64Full(b)).toBe(await xxh64Full(a));

    const dir = tmpDir();
    const store = await openStore(dir);
    try {
      for (const n of ['one', 'two', 'both']) createImage(store, n, 1 << 20);
      const write = (name: string, blocks: [number, Buffer][]) => {
        const img = openImage(store, name, { writable: true });
        for (const [at, data] of blocks) img.write(at * 4096, data);
        img.close();
      };
      write('one', [[0, a]]);
      write('two', [[0, b]]); // a later flush: b meets a in the block index
      write('both', [[0, b], [1, a], [2, a], [3, b]]); // one batch: both, twice each
      const read = (name: string, block: number) => {
        const img = openImage(store, name);
        const out = img.read(block * 4096, 4096);
        img.close();
        return out;
      };
      expect(read('one', 0).equals(a)).toBe(true);
      expect(read('two', 0).equals(b)).toBe(true);
      for (const [blk, want] of [[0, b], [1, a], [2, a], [3, b]] as const) expect(read('both', blk).equals(want)).toBe(true);
      // Equal bytes still share: one slot for a, one for b, each referenced three times.
      const rows = liveSlots(store);
      expect(rows).toHaveLength(2);
      expect(rows[0].hash).toBe(rows[1].hash);
      expect(rows.map((r) => r.refcount)).toEqual([3, 3]);
      expect(auditStore(store)).toEqual([]);
    } finally {
      store.close();
    }
    expect(strata(dir, ['check']).status).toBe(0);
  });

  it('a hash that collides for everything: every image reads its own bytes; identical blocks still share a slot', async () => {
    const dir = tmpDir();
    const store = await openStore(dir, { hash: () => 42 });
    const shared = crypto.randomBytes(4096);
    const models = new Map<string, Buffer>();
    try {
      createImage(store, 'first', 64 * 4096);
      let img = openImage(store, 'first', { writable: true });
      img.write(0, shared);
      img.close();
      models.set('first', Buffer.concat([shared, Buffer.alloc(63 * 4096)]));
      for (let i = 0; i < 12; i++) {
        const name = `img${i}`;
        createImage(store, name, 64 * 4096);
        const model = Buffer.alloc(64 * 4096);
        const twin = crypto.randomBytes(4096);
        const parts: [number, Buffer][] = [
          [0, shared],
          [1, crypto.randomBytes(4096)],
          [2, crypto.randomBytes(4096)],
          [5, twin],
          [9, twin],
          [10, shared],
        ];
        img = openImage(store, name, { writable: true });
        for (const [blk, data] of parts) {
          img.write(blk * 4096, data);
          data.copy(model, blk * 4096);
        }
        img.close();
        models.set(name, model);
      }
      for (const [name, model] of models) {
        const h = openImage(store, name);
        expect(h.read(0, h.size).equals(model), name).toBe(true);
        h.close();
      }
      // shared: one slot (the first stored, so always among the compared candidates), 1 + 2 * 12 references.
      const sharedRef = refcountOf(store, 0);
      expect(sharedRef).toBe(25);
      // Per image, the twin pair shares one slot too: 1 + 12 * 3 distinct blocks stored in all.
      expect(liveSlots(store).length).toBe(1 + 12 * 3);
      expect(auditStore(store)).toEqual([]);
      const report = checkStore(store);
      expect(report.exitStatus).toBe(0);
    } finally {
      store.close();
    }
  });

  it('compressed blocks under a hash that collides for everything: bytes are compared after decompressing, never shared wrongly', async () => {
    const dir = tmpDir();
    const store = await openStore(dir, { hash: () => 42 });
    const r = rng(11);
    const shared = r.text(4096);
    const models = new Map<string, Buffer>();
    try {
      for (let i = 0; i < 6; i++) {
        const data = Buffer.concat([shared, r.text(3 * 4096), shared]);
        const t = beginImport(store, `img${i}`, data.length, { compress: { codec: i % 2 ? 'lz4' : 'zstd', level: 1 } });
        t.img.write(0, data);
        t.finish();
        models.set(`img${i}`, data);
      }
      for (const [name, model] of models) {
        const h = openImage(store, name);
        expect(h.read(0, h.size).equals(model), name).toBe(true);
        h.close();
      }
      const p = packedCounts(store);
      expect(p.packedBlocks).toBe(1 + 6 * 3);
      // Distinct blocks: shared once, three of each image's own.
      expect(liveSlots(store).length - p.containers).toBe(1 + 6 * 3);
      expect(auditStore(store)).toEqual([]);
      expect(checkStore(store).exitStatus).toBe(0);
    } finally {
      store.close();
    }
  });
});
