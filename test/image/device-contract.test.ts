/**
 * The contract every BlockDevice keeps (src/image/device.ts), run against
 * each: Image (an image of a real store) and MemoryDevice (the NBD tests'
 * device). Each test puts the device and a plain Buffer through the same
 * operations and compares what the device reads back with the Buffer
 * (differential), then checks what the interface promises of ranges,
 * read-only devices, flush and allocation status.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import type { BlockDevice, Extent } from '../../src/image/device.js';
import { openImage } from '../../src/image/image.js';
import { createImage, freezeImage } from '../../src/image/lifecycle.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Not a whole number of 4 KiB blocks: the last block is partial. */
const SIZE = 2 * MiB + 3 * 512;

interface Opened {
  device: BlockDevice;
  /** The same device closed and opened again, where the device outlives its handle (what flush promised is there). */
  reopen?: () => Promise<BlockDevice>;
}

interface DeviceKind {
  /** Its content outlives the handle, so a flush's promise can be checked by opening it again. */
  reopens: boolean;
  open(size: number, content?: Buffer): Promise<Opened>;
  /** A read-only device holding `content`. */
  openReadOnly(content: Buffer): Promise<BlockDevice>;
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c();
});

const imageKind: DeviceKind = {
  async open(size, content) {
    const dir = tmpDir();
    let store: Store = await openStore(dir);
    createImage(store, 'disk', size);
    let device: BlockDevice = openImage(store, 'disk', { writable: true });
    if (content) device.write(0, content);
    closers.push(() => {
      device.close();
      store.close();
    });
    return {
      device,
      reopen: async () => {
        device.close();
        store.close();
        store = await openStore(dir, { create: false });
        device = openImage(store, 'disk', { writable: true });
        return device;
      },
    };
  },
  reopens: true,
  async openReadOnly(content) {
    const store = await openStore(tmpDir());
    closers.push(() => store.close());
    createImage(store, 'ro', content.length);
    const w = openImage(store, 'ro', { writable: true });
    w.write(0, content);
    w.close();
    freezeImage(store, 'ro');
    const ro = openImage(store, 'ro');
    closers.push(() => ro.close());
    return ro;
  },
};

const memoryKind: DeviceKind = {
  reopens: false,
  async open(size, content) {
    const device = new MemoryDevice(size);
    if (content) device.write(0, content);
    return { device };
  },
  async openReadOnly(content) {
    const device = new MemoryDevice(content.length, true);
    // Filled below the interface: a read-only device takes no writes.
    content.copy(device.bytes);
    return device;
  },
};

function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StrataError);
    return (e as StrataError).code;
  }
  return 'no error';
}

/** Extents tile [offset, offset + length) in order, with no gap and no overlap. */
function expectTiling(ex: Extent[], offset: number, length: number): void {
  let at = offset;
  for (const e of ex) {
    expect(e.offset).toBe(at);
    expect(e.length).toBeGreaterThan(0);
    at += e.length;
  }
  expect(at).toBe(offset + length);
}

const kindsOf = (ex: Extent[]) => ex.map((e) => [e.offset, e.length, e.kind]);
/**
 * Extents as data or not: a zeroed range is 'zero' or 'hole' (an image with
 * nothing beneath to hide keeps no ZERO entry), never data.
 */
const dataOrNot = (ex: Extent[]) => {
  const out: [number, number, string][] = [];
  for (const e of ex) {
    const kind = e.kind === 'data' ? 'data' : 'reads zeros';
    const last = out[out.length - 1];
    if (last && last[2] === kind) last[1] += e.length;
    else out.push([e.offset, e.length, kind]);
  }
  return out;
};

function describeBlockDevice(name: string, kind: DeviceKind) {
  describe(`BlockDevice contract: ${name}`, () => {
    it('reads back what was written, unaligned writes, zeroes and discards included, as a plain buffer does', async () => {
      const { device } = await kind.open(SIZE);
      const model = Buffer.alloc(SIZE);
      const r = rng(7);
      expect(device.size).toBe(SIZE);
      expect(device.readOnly).toBe(false);
      for (let op = 0; op < 300; op++) {
        const offset = r.int(SIZE);
        const length = Math.min(SIZE - offset, 1 + r.int(r.int(4) === 0 ? 64 * KiB : 9000));
        const what = r.int(10);
        if (what < 6) {
          const data = r.bytes(length);
          device.write(offset, data);
          data.copy(model, offset);
        } else if (what < 8) {
          device.writeZeroes(offset, length);
          model.fill(0, offset, offset + length);
        } else if (what < 9) {
          device.discard(offset, length);
          model.fill(0, offset, offset + length);
        } else device.flush();
        const at = r.int(SIZE);
        const n = r.int(SIZE - at + 1);
        expect(device.read(at, n).equals(model.subarray(at, at + n)), `op ${op}: read ${at}+${n}`).toBe(true);
      }
      expect(device.read(0, SIZE).equals(model)).toBe(true);
      device.flush();
      expect(device.read(0, SIZE).equals(model)).toBe(true);
    });

    it('a range never written reads as zeros and is a hole', async () => {
      const { device } = await kind.open(SIZE);
      device.write(MiB, Buffer.alloc(4096, 0x61));
      expect(device.read(0, MiB).equals(Buffer.alloc(MiB))).toBe(true);
      expect(kindsOf(device.extents(0, MiB))).toEqual([[0, MiB, 'hole']]);
      expect(kindsOf(device.extents(MiB - 4096, 3 * 4096))).toEqual([
        [MiB - 4096, 4096, 'hole'],
        [MiB, 4096, 'data'],
        [MiB + 4096, 4096, 'hole'],
      ]);
    });

    it('written data is data; a zeroed or discarded whole block is no longer data, and reads zeros; extents tile the range, merged', async () => {
      const { device } = await kind.open(SIZE, Buffer.alloc(16 * 4096, 0x62));
      device.writeZeroes(4 * 4096, 2 * 4096);
      device.discard(8 * 4096, 4096);
      // Unaligned: the partly zeroed blocks keep their other bytes and stay data.
      device.writeZeroes(12 * 4096 + 100, 300);
      for (const at of [0, 4096 * 4, 4096 * 8, 4096 * 12]) {
        const ex = device.extents(at, SIZE - at);
        expectTiling(ex, at, SIZE - at);
        for (let i = 1; i < ex.length; i++) expect(ex[i].kind, 'merged runs').not.toBe(ex[i - 1].kind);
      }
      expect(dataOrNot(device.extents(0, 16 * 4096))).toEqual([
        [0, 4 * 4096, 'data'],
        [4 * 4096, 2 * 4096, 'reads zeros'],
        [6 * 4096, 2 * 4096, 'data'],
        [8 * 4096, 4096, 'reads zeros'],
        [9 * 4096, 7 * 4096, 'data'],
      ]);
      expect(device.read(4 * 4096, 2 * 4096).equals(Buffer.alloc(2 * 4096))).toBe(true);
      expect(device.read(8 * 4096, 4096).equals(Buffer.alloc(4096))).toBe(true);
      const edge = device.read(12 * 4096, 4096);
      expect(edge.subarray(0, 100).every((x) => x === 0x62)).toBe(true);
      expect(edge.subarray(100, 400).every((x) => x === 0)).toBe(true);
      expect(edge.subarray(400).every((x) => x === 0x62)).toBe(true);
      device.flush();
      expect(dataOrNot(device.extents(4 * 4096, 2 * 4096))).toEqual([[4 * 4096, 2 * 4096, 'reads zeros']]);
    });

    it('the last, partial block is written and read to the byte; zeroing up to the end zeroes it', async () => {
      const { device } = await kind.open(SIZE);
      const tail = Buffer.alloc(5000, 0x63);
      device.write(SIZE - tail.length, tail);
      expect(device.read(SIZE - tail.length, tail.length).equals(tail)).toBe(true);
      expect(device.read(SIZE, 0).length).toBe(0);
      device.writeZeroes(SIZE - 1000, 1000);
      expect(device.read(SIZE - 5000, 5000).equals(Buffer.concat([Buffer.alloc(4000, 0x63), Buffer.alloc(1000)]))).toBe(true);
    });

    it('every operation on a range past the end is E_RANGE, and changes nothing', async () => {
      const content = Buffer.from(rng(8).bytes(SIZE));
      const { device } = await kind.open(SIZE, content);
      expect(thrownCode(() => device.read(SIZE - 10, 11))).toBe('E_RANGE');
      expect(thrownCode(() => device.read(SIZE + 4096, 1))).toBe('E_RANGE');
      expect(thrownCode(() => device.write(SIZE - 4096, Buffer.alloc(4097, 1)))).toBe('E_RANGE');
      expect(thrownCode(() => device.writeZeroes(SIZE - 1, 2))).toBe('E_RANGE');
      expect(thrownCode(() => device.discard(0, SIZE + 1))).toBe('E_RANGE');
      expect(device.read(0, SIZE).equals(content)).toBe(true);
      device.flush();
      expect(device.read(0, SIZE).equals(content)).toBe(true);
    });

    it('a read-only device refuses writes, zeroes and discards with E_READONLY and keeps its bytes', async () => {
      const content = Buffer.from(rng(9).bytes(64 * KiB));
      const device = await kind.openReadOnly(content);
      expect(device.readOnly).toBe(true);
      expect(device.size).toBe(content.length);
      expect(thrownCode(() => device.write(0, Buffer.alloc(4096)))).toBe('E_READONLY');
      expect(thrownCode(() => device.writeZeroes(4096, 4096))).toBe('E_READONLY');
      expect(thrownCode(() => device.discard(0, 100))).toBe('E_READONLY');
      expect(device.read(0, content.length).equals(content)).toBe(true);
    });

    if (kind.reopens) {
      it('what was written before a flush is there when the device is opened again', async () => {
        const { device, reopen } = await kind.open(SIZE);
        const data = Buffer.from(rng(10).bytes(300 * KiB));
        device.write(12345, data);
        device.writeZeroes(12345 + 4096 * 10, 4096 * 3);
        const want = Buffer.from(data);
        want.fill(0, 4096 * 10, 4096 * 13);
        device.flush();
        const again = await reopen!();
        expect(again.read(12345, data.length).equals(want)).toBe(true);
      });
    }
  });
}

describeBlockDevice('Image', imageKind);
describeBlockDevice('MemoryDevice', memoryKind);
