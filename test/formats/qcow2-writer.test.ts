import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openQcow2, writeQcow2, type Qcow2Source } from '../../src/formats/qcow2/index.js';
import { isStrataError } from '../../src/errors.js';
import type { Extent, ExtentKind } from '../../src/image/device.js';
import { hasQemu, makeRaw, qemuImg, qemuImgStatus, qemuIo, qemuMap, rng, tmp } from './qcow2-helpers.js';

/** A raw buffer source with explicit extents: ranges listed as holes or zero, the rest data. */
function bufferSource(buf: Buffer, marks: { offset: number; length: number; kind: ExtentKind }[]): Qcow2Source & { reads: number } {
  const src = {
    size: buf.length,
    reads: 0,
    read(offset: number, length: number) {
      src.reads += length;
      return Buffer.from(buf.subarray(offset, offset + length));
    },
    extents(offset: number, length: number): Extent[] {
      const out: Extent[] = [];
      let pos = offset;
      const end = offset + length;
      const sorted = [...marks].sort((a, b) => a.offset - b.offset);
      for (const m of sorted) {
        const a = Math.max(pos, m.offset);
        const b = Math.min(end, m.offset + m.length);
        if (b <= a) continue;
        if (a > pos) out.push({ offset: pos, length: a - pos, kind: 'data' });
        out.push({ offset: a, length: b - a, kind: m.kind });
        pos = b;
      }
      if (pos < end) out.push({ offset: pos, length: end - pos, kind: 'data' });
      return out;
    },
  };
  return src;
}

function mixedSource(size: number) {
  const buf = Buffer.alloc(size);
  const r = rng(42);
  for (let i = 0; i < size; i++) buf[i] = i % 3 === 0 ? Math.floor(r() * 256) : i & 0xff;
  const marks: { offset: number; length: number; kind: ExtentKind }[] = [
    { offset: 1 << 20, length: 1 << 20, kind: 'hole' },
    { offset: 3 << 20, length: 512 << 10, kind: 'zero' },
  ];
  buf.fill(0, 1 << 20, 2 << 20);
  buf.fill(0, 3 << 20, (3 << 20) + (512 << 10));
  // Data extents that happen to be all zero become zero clusters too.
  buf.fill(0, 5 << 20, (5 << 20) + (256 << 10));
  return { buf, marks };
}

describe.skipIf(!hasQemu)('qcow2 writer vs qemu-img', () => {
  let t: ReturnType<typeof tmp>;
  beforeAll(() => {
    t = tmp();
  });
  afterAll(() => t.cleanup());

  for (const variant of [{ compress: false }, { compress: true }, { compress: false, clusterSize: 512 }, { compress: true, clusterSize: 2 << 20 }]) {
    it(`raw source with holes, zeros and data ${JSON.stringify(variant)}: check clean, compare identical`, () => {
      const size = (6 << 20) + 12800; // not cluster aligned (qemu-img compare wants whole sectors)
      const { buf, marks } = mixedSource(size);
      const rawPath = join(t.dir, 'src.raw');
      writeFileSync(rawPath, buf);
      const out = join(t.dir, `w-${variant.compress}-${variant.clusterSize ?? 0}.qcow2`);
      const res = writeQcow2(out, bufferSource(buf, marks), variant);
      expect(res.clusters).toBeGreaterThan(0);
      const check = qemuImgStatus('check', out);
      expect(check.out).toMatch(/No errors/);
      expect(check.status).toBe(0);
      const cmp = qemuImgStatus('compare', '-f', 'qcow2', '-F', 'raw', out, rawPath);
      expect(cmp.out).toMatch(/identical/);
      expect(cmp.status).toBe(0);
      const info = JSON.parse(qemuImg('info', '--output=json', out));
      expect(info['virtual-size']).toBe(size);
      expect(info['cluster-size']).toBe(variant.clusterSize ?? 65536);
      expect(info['format-specific'].data.compat).toBe('1.1');
      const map = qemuMap(out);
      const kindAt = (off: number) => map.find((e) => e.offset <= off && off < e.offset + e.length)?.kind;
      if ((variant.clusterSize ?? 65536) <= 256 << 10) {
        // With 2 MiB clusters these ranges share a cluster with data, so they are data.
        expect(kindAt((1 << 20) + 4096)).toBe('hole');
        expect(kindAt((3 << 20) + 4096)).toBe('zero');
        expect(kindAt((5 << 20) + 4096)).toBe('zero');
      }
      expect(kindAt(0)).toBe('data');
      if (variant.compress) {
        const plain = writeQcow2(join(t.dir, 'plain.qcow2'), bufferSource(buf, marks), { ...variant, compress: false });
        expect(res.bytes).toBeLessThan(plain.bytes);
      }
      // And strata reads back what it wrote.
      const r = openQcow2(out);
      try {
        expect(r.read(0, size).equals(buf)).toBe(true);
      } finally {
        r.close();
      }
    });
  }

  it('backing file name and format are recorded; holes show the backing file', () => {
    const base = join(t.dir, 'base.raw');
    const baseBuf = makeRaw(base, 2 << 20, 5);
    const top = Buffer.from(baseBuf);
    top.fill(0x5e, 100000, 200000);
    top.fill(0, 1 << 20, (1 << 20) + 65536);
    const out = join(t.dir, 'with-backing.qcow2');
    // Everything but the changed ranges is a hole.
    const marks: { offset: number; length: number; kind: ExtentKind }[] = [
      { offset: 0, length: 65536, kind: 'hole' as const },
      { offset: 262144, length: (1 << 20) - 262144, kind: 'hole' as const },
      { offset: (1 << 20) + 65536, length: (1 << 20) - 65536, kind: 'hole' as const },
    ];
    const src = bufferSource(top, marks);
    // Mark 1M..1M+64K as zero (it reads zero in the top).
    marks.push({ offset: 1 << 20, length: 65536, kind: 'zero' as const });
    writeQcow2(out, src, { backingFile: 'base.raw', backingFormat: 'raw' });
    expect(qemuImgStatus('check', out).status).toBe(0);
    const info = JSON.parse(qemuImg('info', '--output=json', out));
    expect(info['backing-filename']).toBe('base.raw');
    expect(info['backing-filename-format']).toBe('raw');
    const topRaw = join(t.dir, 'top.raw');
    writeFileSync(topRaw, top);
    expect(qemuImgStatus('compare', '-f', 'qcow2', '-F', 'raw', out, topRaw).status).toBe(0);
  });

  it('round trip: qemu-img qcow2 -> openQcow2 -> writeQcow2 is identical', () => {
    const srcRaw = join(t.dir, 'rt.raw');
    makeRaw(srcRaw, 8 << 20, 11);
    for (const opts of ['cluster_size=65536', 'extended_l2=on', 'compat=0.10,cluster_size=4096']) {
      const orig = join(t.dir, `orig-${opts}.qcow2`);
      qemuImg('convert', '-O', 'qcow2', '-o', opts, srcRaw, orig);
      qemuIo(orig, ['write -z 1M 256k', 'write -P 0x9 7M 4k']);
      const r = openQcow2(orig);
      const copy = join(t.dir, `copy-${opts}.qcow2`);
      try {
        writeQcow2(copy, r, { compress: opts.includes('4096') });
      } finally {
        r.close();
      }
      expect(qemuImgStatus('check', copy).status).toBe(0);
      expect(qemuImgStatus('compare', orig, copy).status).toBe(0);
    }
  });

  it('sparse 1 GiB source: one extents query per L2 table and one read, of its data only', () => {
    const size = 1 << 30;
    const marks: { offset: number; length: number; kind: ExtentKind }[] = [
      { offset: 0, length: 512 << 20, kind: 'hole' },
      { offset: 512 << 20, length: (512 << 20) - 65536, kind: 'zero' },
    ];
    const data = Buffer.alloc(65536, 0x42);
    const ranges = bufferSource(Buffer.alloc(0), marks).extents;
    const src: Qcow2Source & { reads: number; readCalls: number; extentCalls: number } = {
      size,
      reads: 0,
      readCalls: 0,
      extentCalls: 0,
      read(offset, length) {
        src.reads += length;
        src.readCalls++;
        return offset >= size - 65536 ? Buffer.from(data.subarray(0, length)) : Buffer.alloc(length);
      },
      extents(offset, length) {
        src.extentCalls++;
        return ranges(offset, length);
      },
    };
    // bufferSource.extents reports 'data' after the last mark: that is the final 64 KiB.
    const out = join(t.dir, 'sparse.qcow2');
    const res = writeQcow2(out, src);
    // The work follows the data, not the size (a time bound would measure the machine): 64 KiB
    // clusters, 8192 entries per L2 table, so 1 GiB is two tables, each asked for its extents once.
    expect(src.extentCalls).toBe(2);
    expect(src.readCalls).toBe(1);
    expect(src.reads).toBe(65536);
    expect(res.clusters).toBe(1);
    expect(qemuImgStatus('check', out).status).toBe(0);
    const map = qemuMap(out);
    expect(map[0]).toEqual({ offset: 0, length: 512 << 20, kind: 'hole' });
    expect(map[1]).toEqual({ offset: 512 << 20, length: (512 << 20) - 65536, kind: 'zero' });
    expect(map[2]).toEqual({ offset: size - 65536, length: 65536, kind: 'data' });
    expect(readFileSync(out).length).toBeLessThan(1 << 20);
  });

  it('empty and tiny images check clean', () => {
    const empty = join(t.dir, 'empty.qcow2');
    writeQcow2(empty, bufferSource(Buffer.alloc(0), []));
    expect(qemuImgStatus('check', empty).out).toMatch(/No errors/);
    expect(qemuImgStatus('check', empty).out).not.toMatch(/leak/i);
    expect(JSON.parse(qemuImg('info', '--output=json', empty))['virtual-size']).toBe(0);
    const r = openQcow2(empty);
    expect(r.size).toBe(0);
    expect(r.extents(0, 0)).toEqual([]);
    r.close();
    const tiny = join(t.dir, 'tiny.qcow2');
    const buf = Buffer.alloc(7 * 512, 1);
    writeQcow2(tiny, bufferSource(buf, []), { clusterSize: 512, compress: true });
    expect(qemuImgStatus('check', tiny).status).toBe(0);
    writeFileSync(join(t.dir, 'tiny.raw'), buf);
    expect(qemuImgStatus('compare', '-f', 'qcow2', '-F', 'raw', tiny, join(t.dir, 'tiny.raw')).status).toBe(0);
  });

  it('rejects bad options with E_BAD_INPUT', () => {
    const src = bufferSource(Buffer.alloc(4096), []);
    for (const opts of [{ clusterSize: 1000 }, { clusterSize: 256 }, { clusterSize: 4 << 20 }, { backingFile: 'x'.repeat(1024) }, { backingFormat: 'raw' }]) {
      let err: unknown;
      try {
        writeQcow2(join(t.dir, 'bad.qcow2'), src, opts);
      } catch (e) {
        err = e;
      }
      expect(isStrataError(err, 'E_BAD_INPUT')).toBe(true);
    }
  });
});
