import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backingChain, isQcow2File, openQcow2, readQcow2Info } from '../../src/formats/qcow2/index.js';
import { isStrataError } from '../../src/errors.js';
import { be64, hasQemu, makeRaw, patch, normalize, qemuImg, qemuIo, qemuMap, rawOf, stripDepth, tmp } from './qcow2-helpers.js';

const WRITES = [
  'write -P 0xab 0 65536',
  'write -P 0x11 70000 5000', // unaligned, crosses clusters
  'write -z 1048576 131072',
  'write -P 0x22 1200000 512',
  'write -P 0x33 2097152 1048576',
  'write -z 2359296 65536', // zero over data
  'write -P 0x44 4190208 4096', // the last 4 KiB
];

interface Fixture {
  name: string;
  build: (dir: string) => string;
  snapshot?: string;
}

const fixtures: Fixture[] = [
  ...[512, 65536, 2097152].map((cs) => ({
    name: `cluster_size ${cs}`,
    build: (dir: string) => {
      const f = join(dir, `c${cs}.qcow2`);
      qemuImg('create', '-q', '-f', 'qcow2', '-o', `cluster_size=${cs}`, f, '4M');
      qemuIo(f, WRITES);
      return f;
    },
  })),
  {
    name: 'compressed deflate (convert -c)',
    build: (dir) => {
      makeRaw(join(dir, 'src.raw'), 4 << 20, 7);
      const f = join(dir, 'deflate.qcow2');
      qemuImg('convert', '-c', '-O', 'qcow2', join(dir, 'src.raw'), f);
      return f;
    },
  },
  {
    name: 'compressed zstd',
    build: (dir) => {
      makeRaw(join(dir, 'srcz.raw'), 4 << 20, 8);
      const f = join(dir, 'zstd.qcow2');
      qemuImg('convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', join(dir, 'srcz.raw'), f);
      return f;
    },
  },
  {
    name: 'compressed 512-byte clusters',
    build: (dir) => {
      makeRaw(join(dir, 'src5.raw'), 1 << 20, 9);
      const f = join(dir, 'deflate512.qcow2');
      qemuImg('convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=512', join(dir, 'src5.raw'), f);
      return f;
    },
  },
  {
    name: 'compat=0.10 (version 2)',
    build: (dir) => {
      const f = join(dir, 'v2.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', f, '4M');
      qemuIo(f, WRITES);
      return f;
    },
  },
  {
    name: 'extended_l2=on',
    build: (dir) => {
      const f = join(dir, 'ext.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=65536', f, '4M');
      qemuIo(f, [...WRITES, 'write -P 0x55 3145728 2048', 'write -z 3149824 4096', 'write -P 0x66 3158016 1000']);
      return f;
    },
  },
  {
    name: 'extended_l2=on compressed',
    build: (dir) => {
      makeRaw(join(dir, 'srce.raw'), 2 << 20, 10);
      const f = join(dir, 'extc.qcow2');
      qemuImg('convert', '-c', '-O', 'qcow2', '-o', 'extended_l2=on', join(dir, 'srce.raw'), f);
      return f;
    },
  },
  ...[1, 64].map((bits) => ({
    name: `refcount_bits=${bits}`,
    build: (dir: string) => {
      const f = join(dir, `rc${bits}.qcow2`);
      qemuImg('create', '-q', '-f', 'qcow2', '-o', `refcount_bits=${bits}`, f, '4M');
      qemuIo(f, WRITES);
      return f;
    },
  })),
  {
    name: 'odd virtual size',
    build: (dir) => {
      const f = join(dir, 'odd.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', f, '1000001');
      qemuIo(f, ['write -P 0x77 999424 512', 'write -P 0x78 0 100']);
      return f;
    },
  },
];

describe.skipIf(!hasQemu)('qcow2 reader vs qemu-img', () => {
  let t: ReturnType<typeof tmp>;
  beforeAll(() => {
    t = tmp();
  });
  afterAll(() => t.cleanup());

  for (const fx of fixtures) {
    it(`${fx.name}: read equals qemu-img convert, extents equal qemu-img map`, () => {
      const f = fx.build(t.dir);
      expect(isQcow2File(f)).toBe(true);
      const r = openQcow2(f);
      try {
        const want = rawOf(f, t.dir);
        expect(r.size).toBe(want.length);
        const got = r.read(0, r.size);
        expect(got.equals(want)).toBe(true);
        // Reads at odd offsets and lengths agree too.
        for (const [o, l] of [[1, 1000], [65535, 3], [r.size - 7, 7], [123457, 300000]]) {
          if (o + l <= r.size) expect(r.read(o, l).equals(want.subarray(o, o + l))).toBe(true);
        }
        expect(stripDepth(r.extents(0, r.size))).toEqual(qemuMap(f));
      } finally {
        r.close();
      }
    });
  }

  it('info fields match qemu-img info', () => {
    const f = join(t.dir, 'info.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,compression_type=zstd,refcount_bits=8', f, '5M');
    const info = readQcow2Info(f);
    expect(info).toMatchObject({ version: 3, virtualSize: 5 << 20, clusterSize: 65536, dirty: false, corruptBit: false, compressionType: 'zstd', extendedL2: true, refcountBits: 8, snapshots: [] });
    const v2 = join(t.dir, 'info2.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', v2, '1M');
    expect(readQcow2Info(v2)).toMatchObject({ version: 2, refcountBits: 16, compressionType: 'deflate', extendedL2: false });
    expect(isQcow2File(join(t.dir, 'nope'))).toBe(false);
    const v2b = join(t.dir, 'info2b.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'info2.qcow2', '-F', 'qcow2', v2b);
    expect(readQcow2Info(v2b)).toMatchObject({ version: 2, backingFile: 'info2.qcow2', backingFormat: 'qcow2', virtualSize: 1 << 20 });
  });

  it('internal snapshot: snapshot read equals convert -l snapshot.name, active differs', () => {
    const f = join(t.dir, 'snap.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', f, '4M');
    qemuIo(f, ['write -P 0xa1 0 1M', 'write -P 0xa2 3M 64k']);
    qemuImg('snapshot', '-c', 'before', f);
    qemuIo(f, ['write -P 0xb1 512k 1M', 'write -z 3M 64k', 'write -P 0xb2 2M 4k']);
    // The snapshot keeps its own virtual size after the active image grows.
    qemuImg('resize', '-q', f, '6M');
    qemuIo(f, ['write -P 0xb3 5M 64k']);
    const info = readQcow2Info(f);
    expect(info.snapshots).toHaveLength(1);
    expect(info.snapshots[0]).toMatchObject({ id: '1', name: 'before', virtualSize: 4 << 20 });
    expect(info.virtualSize).toBe(6 << 20);
    expect(info.snapshots[0].date.getTime()).toBeGreaterThan(Date.UTC(2020, 0, 1));
    const active = openQcow2(f);
    const snapByName = openQcow2(f, { snapshot: 'before' });
    const snapById = openQcow2(f, { snapshot: '1' });
    try {
      const wantActive = rawOf(f, t.dir);
      // qemu-img reads a snapshot at the active image's size (6M); the snapshot itself is 4M, the rest zeros.
      const qemuSnap = rawOf(f, t.dir, 'before');
      expect(qemuSnap.length).toBe(6 << 20);
      expect(qemuSnap.subarray(4 << 20).every((b) => b === 0)).toBe(true);
      const wantSnap = qemuSnap.subarray(0, 4 << 20);
      expect(wantActive.subarray(0, 4 << 20).equals(wantSnap)).toBe(false);
      expect(active.read(0, active.size).equals(wantActive)).toBe(true);
      expect(snapByName.size).toBe(4 << 20);
      expect(snapByName.read(0, snapByName.size).equals(wantSnap)).toBe(true);
      expect(snapById.read(0, snapById.size).equals(wantSnap)).toBe(true);
      expect(stripDepth(active.extents(0, active.size))).toEqual(qemuMap(f));
    } finally {
      active.close();
      snapByName.close();
      snapById.close();
    }
    let err: unknown;
    try {
      openQcow2(f, { snapshot: 'nope' });
    } catch (e) {
      err = e;
    }
    expect(isStrataError(err, 'E_BAD_INPUT')).toBe(true);
    expect((err as Error).message).toMatch(/snapshot/);
  });

  it('3-deep backing chain: backingChain and layered reads match qemu-img', () => {
    const base = join(t.dir, 'base.qcow2');
    const rawBase = join(t.dir, 'base0.raw');
    makeRaw(rawBase, 2 << 20, 3);
    qemuImg('convert', '-O', 'qcow2', rawBase, base);
    const mid = join(t.dir, 'mid.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', mid);
    qemuIo(mid, ['write -P 0xc1 64k 128k', 'write -z 1M 64k']);
    const top = join(t.dir, 'top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2', top);
    qemuIo(top, ['write -P 0xd1 100k 10k']);
    expect(backingChain(top)).toEqual([
      { path: top, format: 'qcow2' },
      { path: mid, format: 'qcow2' },
      { path: base, format: 'qcow2' },
    ]);
    expect(readQcow2Info(mid)).toMatchObject({ backingFile: 'base.qcow2', backingFormat: 'qcow2' });
    // Layered read: holes fall through to the next layer.
    const readers = backingChain(top).map((l) => openQcow2(l.path));
    try {
      const size = readers[0].size;
      const readLayer = (i: number, off: number, len: number): Buffer => {
        const out = Buffer.alloc(len);
        if (i >= readers.length) return out;
        for (const e of readers[i].extents(off, len)) {
          const b = e.kind === 'hole' ? readLayer(i + 1, e.offset, e.length) : readers[i].read(e.offset, e.length);
          b.copy(out, e.offset - off);
        }
        return out;
      };
      expect(readLayer(0, 0, size).equals(rawOf(top, t.dir))).toBe(true);
      expect(stripDepth(readers[0].extents(0, size))).toEqual(qemuMap(top));
      expect(stripDepth(readers[1].extents(0, size))).toEqual(normalize(qemuMap(mid)));
    } finally {
      for (const r of readers) r.close();
    }
    // A raw backing file ends the chain.
    const overRaw = join(t.dir, 'over-raw.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base0.raw', '-F', 'raw', overRaw);
    expect(backingChain(overRaw)).toEqual([
      { path: overRaw, format: 'qcow2' },
      { path: rawBase, format: 'raw' },
    ]);
  });

  it('dirty bit: reads anyway and reports dirty', () => {
    const f = join(t.dir, 'dirty.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', f, '1M');
    qemuIo(f, ['write -P 0x12 0 4k']);
    // Set the dirty bit (incompatible bit 0) as a crashed writer with lazy refcounts leaves it.
    patch(f, 72, be64(1));
    expect(readQcow2Info(f).dirty).toBe(true);
    const r = openQcow2(f);
    try {
      expect(r.info.dirty).toBe(true);
      expect(r.read(0, 4096).every((b) => b === 0x12)).toBe(true);
    } finally {
      r.close();
    }
  });
});
