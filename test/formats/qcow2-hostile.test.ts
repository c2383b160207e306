/**
 * Hostile headers and tables: each crafted by patching a valid qemu-img-made
 * file, each must fail with a one-line StrataError naming the problem.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backingChain, openQcow2, readQcow2Info } from '../../src/formats/qcow2/index.js';
import { StrataError, type ErrorCode } from '../../src/errors.js';
import { H, be32, be64, fileSize, hasQemu, patch, qemuImg, qemuIo, readHeaderField, rng, tmp, truncate } from './qcow2-helpers.js';
import { qemuImgCreateLuks } from '../helpers/tools.js';

function expectError(fn: () => unknown, code: ErrorCode, re: RegExp): StrataError {
  let err: unknown;
  try {
    const r = fn() as { read?: (o: number, l: number) => Buffer; size?: number; close?: () => void } | undefined;
    // Opening may succeed when the damage is in a table read lazily: reading must then fail.
    if (r && typeof r.read === 'function') {
      try {
        r.read(0, r.size as number);
      } finally {
        r.close?.();
      }
    }
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(StrataError);
  const se = err as StrataError;
  expect(se.message).not.toContain('\n');
  expect({ code: se.code, message: se.message }).toMatchObject({ code, message: expect.stringMatching(re) });
  return se;
}

describe.skipIf(!hasQemu)('qcow2 hostile input', () => {
  let t: ReturnType<typeof tmp>;
  let good: string;
  let compressed: string;
  let n = 0;
  /** A fresh copy of `src` to damage. */
  const copy = (src = good): string => {
    const f = join(t.dir, `case${n++}.qcow2`);
    copyFileSync(src, f);
    return f;
  };
  const l1Offset = (f: string) => readHeaderField(f, H.l1TableOffset, 8);
  const l2Offset = (f: string) => Number(readFileSync(f).readBigUInt64BE(l1Offset(f)) & 0x00fffffffffffe00n);

  beforeAll(() => {
    t = tmp();
    good = join(t.dir, 'good.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', good, '4M');
    qemuIo(good, ['write -P 0x61 0 128k', 'write -P 0x62 2M 64k']);
    const raw = join(t.dir, 'text.raw');
    // Random lowercase text: compresses to roughly 60%, so each cluster spans many sectors.
    const r = rng(99);
    const text = Buffer.alloc(256 << 10);
    for (let i = 0; i < text.length; i++) text[i] = 97 + Math.floor(r() * 26);
    writeFileSync(raw, text);
    compressed = join(t.dir, 'compressed.qcow2');
    qemuImg('convert', '-c', '-O', 'qcow2', raw, compressed);
  });
  afterAll(() => t.cleanup());

  it('the unpatched files read cleanly', () => {
    for (const f of [good, compressed]) {
      const r = openQcow2(f);
      r.read(0, r.size);
      r.close();
    }
  });

  it('truncated header', () => {
    const f = copy();
    truncate(f, 50);
    expectError(() => openQcow2(f), 'E_BAD_FILE', /truncated/);
    const g = copy();
    truncate(g, 90);
    expectError(() => readQcow2Info(g), 'E_BAD_FILE', /truncated.*104/);
  });

  it('truncated file: tables run past EOF', () => {
    const f = copy();
    truncate(f, l1Offset(f) + 4); // L1 table cut short
    expectError(() => openQcow2(f), 'E_BAD_FILE', /L1 table.*past end of file/);
    const g = copy();
    truncate(g, l2Offset(g) + 100); // L2 table cut short
    expectError(() => openQcow2(g), 'E_BAD_FILE', /L2 table.*past end of file/);
    const d = copy();
    truncate(d, fileSize(d) - 4096); // last data cluster cut short
    expectError(() => openQcow2(d), 'E_BAD_FILE', /past end of file/);
  });

  it('L1 table offset beyond EOF, unaligned, overlapping the header', () => {
    expectError(() => { const f = copy(); patch(f, H.l1TableOffset, be64(1 << 30)); return openQcow2(f); }, 'E_BAD_FILE', /L1 table.*past end of file/);
    expectError(() => { const f = copy(); patch(f, H.l1TableOffset, be64(65536 + 512)); return openQcow2(f); }, 'E_BAD_FILE', /L1 table offset .* not cluster aligned/);
    expectError(() => { const f = copy(); patch(f, H.l1TableOffset, be64(0)); return openQcow2(f); }, 'E_BAD_FILE', /L1 table offset .* overlaps the header/);
  });

  it('L2 table offsets beyond EOF, unaligned, overlapping the header', () => {
    const l1e = (v: bigint) => { const f = copy(); patch(f, l1Offset(f), be64(v | (1n << 63n))); return f; };
    expectError(() => openQcow2(l1e(1n << 40n)), 'E_BAD_FILE', /L1 table entry 0: L2 table.*past end of file/);
    expectError(() => openQcow2(l1e(0x30200n)), 'E_BAD_FILE', /L2 table offset .* not cluster aligned/);
    expectError(() => openQcow2(l1e(0n | 0x200n)), 'E_BAD_FILE', /L2 table offset .* not cluster aligned/);
    // An L1 entry of just the header cluster's offset bits cannot be told from 0 (unallocated); use a data entry instead.
    const f = copy();
    patch(f, l2Offset(f), be64((1n << 63n) | 0x200n));
    expectError(() => openQcow2(f), 'E_BAD_FILE', /data offset .* not cluster aligned/);
  });

  it('refcount table offset beyond EOF, unaligned, overlapping the header, absurd size', () => {
    expectError(() => { const f = copy(); patch(f, H.refcountTableOffset, be64(1 << 30)); return openQcow2(f); }, 'E_BAD_FILE', /refcount table.*past end of file/);
    expectError(() => { const f = copy(); patch(f, H.refcountTableOffset, be64(65536 + 8)); return openQcow2(f); }, 'E_BAD_FILE', /refcount table offset .* not cluster aligned/);
    expectError(() => { const f = copy(); patch(f, H.refcountTableOffset, be64(0)); return openQcow2(f); }, 'E_BAD_FILE', /refcount table offset .* overlaps the header/);
    expectError(() => { const f = copy(); patch(f, H.refcountTableClusters, be32(0xffffffff)); return openQcow2(f); }, 'E_BAD_FILE', /refcount table .* exceeds 8 MiB/);
    expectError(() => { const f = copy(); patch(f, H.refcountTableOffset, be64(l1Offset(f))); return openQcow2(f); }, 'E_BAD_FILE', /overlaps the refcount table/);
  });

  it('refcount_order out of range', () => {
    expectError(() => { const f = copy(); patch(f, H.refcountOrder, be32(7)); return openQcow2(f); }, 'E_BAD_FILE', /refcount_order 7/);
  });

  it('l1_size too small or absurdly large', () => {
    expectError(() => { const f = copy(); patch(f, H.l1Size, be32(0)); return openQcow2(f); }, 'E_BAD_FILE', /l1_size 0 too small/);
    expectError(() => { const f = copy(); patch(f, H.l1Size, be32(0xffffffff)); return openQcow2(f); }, 'E_BAD_FILE', /l1_size 4294967295 is absurdly large/);
    // Large but under the cap: the table would run past EOF.
    expectError(() => { const f = copy(); patch(f, H.l1Size, be32(1 << 20)); return openQcow2(f); }, 'E_BAD_FILE', /L1 table.*past end of file/);
  });

  it('virtual size over the limit, or needing an L1 table over 32 MiB', () => {
    expectError(() => { const f = copy(); patch(f, H.size, be64(2n ** 62n)); return openQcow2(f); }, 'E_BAD_FILE', /virtual size .* exceeds/);
    expectError(() => { const f = copy(); patch(f, H.size, be64(2n ** 52n)); return openQcow2(f); }, 'E_BAD_FILE', /L1 table over 32 MiB/);
    expectError(() => { const f = copy(); patch(f, H.size, be64(1n << 40n)); return openQcow2(f); }, 'E_BAD_FILE', /l1_size 1 too small for virtual size/);
  });

  it('cluster_bits out of range', () => {
    for (const bits of [0, 8, 22, 63, 0xffffffff]) {
      expectError(() => { const f = copy(); patch(f, H.clusterBits, be32(bits)); return openQcow2(f); }, 'E_BAD_FILE', new RegExp(`cluster_bits ${bits} out of range`));
    }
  });

  it('header_length out of range', () => {
    for (const len of [0, 72, 100, 108 + 1, 65536 + 8]) {
      expectError(() => { const f = copy(); patch(f, H.headerLength, be32(len)); return openQcow2(f); }, 'E_BAD_FILE', /header_length/);
    }
  });

  it('header extension running past the header cluster', () => {
    const f = copy();
    const hl = readHeaderField(f, H.headerLength, 4);
    patch(f, hl, [...be32(0x12345678), ...be32(70000)]);
    expectError(() => openQcow2(f), 'E_BAD_FILE', /header extension 0x12345678 .* runs past/);
  });

  it('compressed cluster running past EOF, or not inflating to one cluster', () => {
    const l2 = l2Offset(compressed);
    const entry = readFileSync(compressed).readBigUInt64BE(l2);
    expect(entry >> 62n).toBe(1n); // compressed
    const shift = 62n - (16n - 8n);
    const hostOf = (e: bigint) => Number(e & ((1n << shift) - 1n));
    // All additional sectors set: the compressed length runs far past EOF.
    const f = copy(compressed);
    patch(f, l2, be64(entry | (0xffn << shift)));
    // Put the cluster near the end so the maximal length overruns.
    const nearEnd = BigInt(fileSize(f) - 1000);
    patch(f, l2, be64((1n << 62n) | (0xffn << shift) | nearEnd));
    expectError(() => openQcow2(f), 'E_BAD_FILE', /compressed length .* runs past end of file/);
    // Garbage instead of deflate data.
    const g = copy(compressed);
    patch(g, hostOf(entry), Buffer.alloc(2000, 0xff));
    expectError(() => openQcow2(g), 'E_BAD_FILE', /compressed cluster 0 .* (does not inflate|not one cluster)/);
    // Too few sectors: the stream ends early.
    const h = copy(compressed);
    patch(h, l2, be64((1n << 62n) | BigInt(hostOf(entry))));
    expectError(() => openQcow2(h), 'E_BAD_FILE', /compressed cluster 0 .* (does not inflate|not one cluster)/);
  });

  it('backing file name over 1023 bytes, or outside the header cluster', () => {
    const base = join(t.dir, 'b-base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '4M');
    const top = join(t.dir, 'b-top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'b-base.qcow2', '-F', 'qcow2', top);
    expect(readQcow2Info(top).backingFile).toBe('b-base.qcow2');
    expectError(() => { const f = copy(top); patch(f, H.backingFileSize, be32(1024)); return readQcow2Info(f); }, 'E_BAD_FILE', /backing file name is 1024 bytes, over the 1023 byte limit/);
    expectError(() => { const f = copy(top); patch(f, H.backingFileOffset, be64(65536 - 4)); return readQcow2Info(f); }, 'E_BAD_FILE', /backing file name .* outside the header cluster/);
    expectError(() => { const f = copy(top); patch(f, H.backingFileOffset, be64(2n ** 60n)); return backingChain(f); }, 'E_BAD_FILE', /backing file name .* outside the header cluster/);
  });

  it('snapshot table out of range', () => {
    const s = join(t.dir, 'snap.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', s, '1M');
    qemuImg('snapshot', '-c', 'one', s);
    expect(readQcow2Info(s).snapshots.map((x) => x.name)).toEqual(['one']);
    const snapOff = readHeaderField(s, H.snapshotsOffset, 8);
    expectError(() => { const f = copy(s); patch(f, H.snapshotsOffset, be64(2 ** 40)); return openQcow2(f); }, 'E_BAD_FILE', /snapshot table.*past end of file/);
    expectError(() => { const f = copy(s); patch(f, H.snapshotsOffset, be64(snapOff + 8)); return openQcow2(f); }, 'E_BAD_FILE', /snapshot table offset .* not cluster aligned/);
    expectError(() => { const f = copy(s); patch(f, H.nbSnapshots, be32(70000)); return openQcow2(f); }, 'E_BAD_FILE', /nb_snapshots 70000 exceeds/);
    expectError(() => { const f = copy(s); patch(f, H.nbSnapshots, be32(5000)); return readQcow2Info(f); }, 'E_BAD_FILE', /snapshot table entry \d+ .*past end of file/);
    // The snapshot's own L1 table beyond EOF.
    expectError(() => { const f = copy(s); patch(f, snapOff, be64(2 ** 40)); return openQcow2(f, { snapshot: 'one' }); }, 'E_BAD_FILE', /L1 table of snapshot "one".*past end of file/);
    // Extra data length absurd.
    expectError(() => { const f = copy(s); patch(f, snapOff + 36, be32(1 << 30)); return openQcow2(f); }, 'E_BAD_FILE', /extra data of \d+ bytes exceeds/);
  });

  it('a backing chain that loops, and a missing backing file', () => {
    const a = join(t.dir, 'loop-a.qcow2');
    const b = join(t.dir, 'loop-b.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', a, '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', b, '1M');
    expectError(() => backingChain(a), 'E_BAD_FILE', /backing chain loops/);
    const self = join(t.dir, 'self.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'self.qcow2', '-F', 'qcow2', self, '1M');
    expectError(() => backingChain(self), 'E_BAD_FILE', /backing chain loops/);
    const orphan = join(t.dir, 'orphan.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', orphan, '1M');
    expectError(() => backingChain(orphan), 'E_NOT_FOUND', /backing file .*gone\.qcow2 not found/);
    expectError(() => openQcow2(join(t.dir, 'absent.qcow2')), 'E_NOT_FOUND', /no such file/);
  });

  it('refuses encryption, external data files, unknown incompatible bits and the corrupt bit', () => {
    expectError(() => { const f = copy(); patch(f, H.cryptMethod, be32(1)); return openQcow2(f); }, 'E_UNSUPPORTED', /encrypted .*crypt_method 1: AES/);
    const luks = join(t.dir, 'luks.qcow2');
    qemuImgCreateLuks(['--object', 'secret,id=sec0,data=pw', '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100', luks, '1M']);
    expectError(() => openQcow2(luks), 'E_UNSUPPORTED', /encrypted .*LUKS/);
    const ext = join(t.dir, 'ext.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(t.dir, 'ext.data')}`, ext, '1M');
    expectError(() => openQcow2(ext), 'E_UNSUPPORTED', /external data file .*incompatible bit 2/);
    const e = expectError(() => { const f = copy(); patch(f, H.incompatible, be64((1n << 5n) | (1n << 40n))); return openQcow2(f); }, 'E_UNSUPPORTED', /unknown incompatible feature bits 5, 40/);
    expect(e.data.bits).toEqual([5, 40]);
    const c = copy();
    patch(c, H.incompatible, be64(1n << 1n));
    expect(readQcow2Info(c).corruptBit).toBe(true);
    expectError(() => openQcow2(c), 'E_BAD_FILE', /marked corrupt \(incompatible bit 1\)/);
  });

  it('other malformed fields', () => {
    expectError(() => { const f = copy(); patch(f, H.version, be32(4)); return openQcow2(f); }, 'E_UNSUPPORTED', /version 4/);
    expectError(() => { const f = copy(); patch(f, 0, Buffer.from('QFIX')); return openQcow2(f); }, 'E_BAD_INPUT', /not a qcow2 image/);
    expectError(() => { const f = copy(); patch(f, H.incompatible, be64(1n << 4n)); patch(f, H.clusterBits, be32(12)); return openQcow2(f); }, 'E_BAD_FILE', /(extended L2 .* cluster_bits|not cluster aligned)/);
    expectError(() => { const f = copy(); patch(f, H.incompatible, be64(1n << 3n)); return openQcow2(f); }, 'E_BAD_FILE', /compression type bit/);
  });
});
