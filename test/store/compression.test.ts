/**
 * Compressed blocks (locations.ts, relocate.ts): a block keeps its slot
 * number (its identity, named by maps) while its bytes move into fragments
 * packed in container slots.
 *
 * - Imports with zstd and lz4 read back byte for byte, export raw and qcow2
 *   files qemu-img accepts, and check clean; stats and du show the saving.
 * - Dedup works on uncompressed content, both ways round.
 * - `strata compress` moves frozen images' blocks without changing a map,
 *   and leaves alone blocks of images a server holds open.
 * - rm frees fragments; gc repacks half-empty containers.
 * - check verifies fragments against the hash of their uncompressed bytes.
 * - Without the native addon a compressed store still reads; writing
 *   compressed blocks fails with one clear line and changes nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openStore } from '../../src/store/core/store.js';
import { available } from '../helpers/available.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { forceRefcount, refcountOf } from '../helpers/slots.js';
import { forEachLiveSlot } from '../../src/store/slots/slots.js';
import { requireTool, runOk } from '../helpers/tools.js';
import { canCompress, compressBatch, compressEach, decompressBlock } from '../../src/store/blocks/codecs.js';
import { sqlOf } from '../helpers/sql.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Stats {
  distinctBytes: number;
  storedBytes: number;
  savings: { zeroBytes: number; layeringBytes: number; dedupBytes: number; compressionBytes: number };
  compression: { setting: string; blocks: number; bytesBefore: number; fragmentBytes: number; bytesAfter: number };
  logicalBytes: number;
  dataFiles: { allocatedBytes: number };
}
const stats = (store: string): Stats => JSON.parse(strataOk(store, ['stats', '--json']).stdout);
const read = (store: string, name: string): Buffer => strataOk(store, ['read', name]).out;

/** 4 MiB: text-like blocks, random blocks, zeros, a repeated block. */
function mixed(seed: number): Buffer {
  const r = rng(seed);
  return Buffer.concat([r.text(2 * MiB), r.bytes(MiB), Buffer.alloc(512 * KiB), Buffer.alloc(512 * KiB, 0x61)]);
}

async function audit(store: string): Promise<string[]> {
  const s = await openStore(store, { create: false });
  try {
    return auditStore(s);
  } finally {
    s.close();
  }
}

describe('compressed blocks', () => {
  for (const codec of ['zstd', 'lz4', 'zstd-9', 'lz4hc']) {
    it(`import --compress ${codec}: reads back, exports, checks clean, and stores less`, async () => {
      const store = tmpDir();
      const file = path.join(store, '..', `${path.basename(store)}-in.raw`);
      const data = mixed(1);
      fs.writeFileSync(file, data);
      try {
        strataOk(store, ['import', '--compress', codec, file, 'img']);
        expect(read(store, 'img').equals(data)).toBe(true);
        const s = stats(store);
        // The text blocks (512) compress; random ones stay as they are; zeros and the repeated block store ~nothing.
        expect(s.compression.blocks).toBeGreaterThanOrEqual(500);
        expect(s.compression.bytesAfter).toBeLessThan(s.compression.bytesBefore / (codec.startsWith('lz4') ? 1.3 : 1.8));
        expect(s.storedBytes).toBe(s.distinctBytes - s.savings.compressionBytes);
        expect(s.savings.zeroBytes + s.savings.layeringBytes + s.savings.dedupBytes + s.savings.compressionBytes).toBe(s.logicalBytes - s.storedBytes);
        expect(s.storedBytes).toBeLessThan(s.distinctBytes - (codec.startsWith('lz4') ? 0.3 : 0.8) * MiB);
        const du = JSON.parse(strataOk(store, ['du', '--json']).stdout)[0];
        expect(du.compression.bytesBefore).toBe(s.compression.bytesBefore);
        expect(strataOk(store, ['check']).status).toBe(0);
        expect(await audit(store)).toEqual([]);
        const out = path.join(store, '..', `${path.basename(store)}-out.raw`);
        strataOk(store, ['export', 'img', out]);
        expect(fs.readFileSync(out).equals(data)).toBe(true);
        fs.rmSync(out);
      } finally {
        fs.rmSync(file, { force: true });
      }
    });
  }

  it('a compressed image exported as qcow2 passes qemu-img check and compares equal to the input', async () => {
    if (!requireTool('qemu-img')) return;
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const file = path.join(dir, 'in.raw');
    fs.writeFileSync(file, mixed(2));
    strataOk(store, ['init', '--compress', 'zstd']);
    strataOk(store, ['import', file, 'img']);
    expect(stats(store).compression.blocks).toBeGreaterThan(0);
    strataOk(store, ['export', 'img', path.join(dir, 'out.qcow2'), '--format', 'qcow2']);
    await runOk('qemu-img', ['check', path.join(dir, 'out.qcow2')]);
    await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', file, path.join(dir, 'out.qcow2')]);
  });

  it('dedup is on uncompressed content: a compressed and a plain copy of a block are one block, either way round', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'in.raw');
    fs.writeFileSync(file, rng(3).text(MiB));
    for (const [first, second] of [
      ['zstd', 'none'],
      ['none', 'lz4'],
    ]) {
      const store = path.join(dir, `store-${first}`);
      strataOk(store, ['import', '--compress', first, file, 'a']);
      const one = stats(store);
      strataOk(store, ['import', '--compress', second, file, 'b']);
      const two = stats(store);
      expect(two.distinctBytes).toBe(one.distinctBytes);
      expect(two.storedBytes).toBe(one.storedBytes);
      expect(read(store, 'b').equals(fs.readFileSync(file))).toBe(true);
      expect(strata(store, ['check']).status).toBe(0);
    }
  });

  it('init --compress sets the store default; a bad codec or level is one line and changes nothing', () => {
    const store = tmpDir();
    expect(JSON.parse(strataOk(store, ['init', '--json']).stdout).compression).toBe('none');
    const bad = strata(store, ['init', '--compress', 'brotli']);
    expect(bad.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(bad.stderr).toBe("strata: unknown compression 'brotli': use zstd, zstd-LEVEL (1-19), lz4, lz4hc, lz4hc-LEVEL (1-12) or none\n");
    const level = strata(store, ['import', '--compress', 'zstd-99', '/dev/null', 'x']);
    expect(level.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(level.stderr).toMatch(/^strata: zstd level 99 is out of range[^\n]*\n$/);
    expect(stats(store).compression.setting).toBe('none');
    expect(JSON.parse(strataOk(store, ['init', '--compress', 'zstd-5', '--json']).stdout).compression).toBe('zstd-5');
    expect(stats(store).compression.setting).toBe('zstd-5');
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout)).toEqual([]);
  });

  it('strata compress moves frozen blocks without changing a map; clones read the same; leaves keep theirs', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const file = path.join(dir, 'in.raw');
    const data = mixed(4);
    fs.writeFileSync(file, data);
    strataOk(store, ['import', file, 'base']);
    strataOk(store, ['clone', 'base', 'vm']);
    const patch = rng(5).text(64 * KiB);
    strataOk(store, ['write', 'vm', '--offset', '0'], { input: patch });
    const maps = () => strataOk(store, ['map', 'base', '--json']).stdout + strataOk(store, ['map', 'vm', '--json']).stdout;
    const mapsBefore = maps();
    const before = stats(store);
    const leaf = strata(store, ['compress', 'vm']);
    expect(leaf.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(leaf.stderr).toBe('strata: image vm is a writable leaf: snapshot or freeze it to compress its blocks (leaves keep theirs uncompressed)\n');
    const r = JSON.parse(strataOk(store, ['compress', '--json']).stdout);
    expect(r.compressed).toBeGreaterThanOrEqual(500);
    expect(r.busy).toBe(0);
    expect(maps()).toBe(mapsBefore);
    const after = stats(store);
    expect(after.distinctBytes).toBe(before.distinctBytes);
    expect(after.storedBytes).toBeLessThan(before.storedBytes - MiB);
    expect(after.dataFiles.allocatedBytes).toBeLessThan(before.dataFiles.allocatedBytes - MiB);
    expect(read(store, 'base').equals(data)).toBe(true);
    const vm = Buffer.from(data);
    patch.copy(vm, 0);
    expect(read(store, 'vm').equals(vm)).toBe(true);
    // The leaf's own 64 KiB stay as they are.
    expect(JSON.parse(strataOk(store, ['du', 'vm', '--json']).stdout)[0].compression.bytesBefore).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
    // Nothing left to do the second time.
    expect(JSON.parse(strataOk(store, ['compress', 'base', '--json']).stdout).compressed).toBe(0);
  });

  it('compress --codec recompresses with another codec, and --codec none puts blocks back uncompressed; the bytes never change', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const data = mixed(14);
    fs.writeFileSync(path.join(dir, 'in.raw'), data);
    strataOk(store, ['import', '--compress', 'zstd', path.join(dir, 'in.raw'), 'base']);
    strataOk(store, ['clone', 'base', 'vm']);
    const zstd = stats(store);
    const hot = JSON.parse(strataOk(store, ['compress', 'base', '--codec', 'lz4hc', '--json']).stdout);
    expect(hot.compressed).toBe(zstd.compression.blocks - hot.uncompressed);
    const lz4 = stats(store);
    expect(lz4.compression.blocks).toBe(hot.compressed);
    expect(lz4.storedBytes).toBeGreaterThan(zstd.storedBytes); // lz4 packs less tightly
    expect(read(store, 'vm').equals(data)).toBe(true);
    // Already lz4 blocks: only the random ones (stored as they are) are looked at again, and stay.
    const again = JSON.parse(strataOk(store, ['compress', '--codec', 'lz4', '--json']).stdout);
    expect(again).toMatchObject({ compressed: 0, uncompressed: 0, incompressible: again.blocks });
    const back = JSON.parse(strataOk(store, ['compress', '--codec', 'none', '--json']).stdout);
    expect(back.uncompressed).toBe(lz4.compression.blocks);
    const plain = stats(store);
    expect(plain.compression).toMatchObject({ blocks: 0, bytesAfter: 0 });
    expect(plain.storedBytes).toBe(plain.distinctBytes);
    expect(read(store, 'base').equals(data)).toBe(true);
    expect(read(store, 'vm').equals(data)).toBe(true);
    strataOk(store, ['gc']);
    expect(strata(store, ['check']).status).toBe(0);
    expect(await audit(store)).toEqual([]);
  });

  it('rm frees fragments; gc repacks half-empty containers; what stays reads the same', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const full = rng(6).text(2 * MiB);
    // Every other block of `full`: it shares half of each container's fragments.
    const half = Buffer.from(full);
    for (let off = 0; off < half.length; off += 8 * KiB) half.fill(0, off, off + 4 * KiB);
    fs.writeFileSync(path.join(dir, 'full.raw'), full);
    fs.writeFileSync(path.join(dir, 'half.raw'), half);
    strataOk(store, ['init', '--compress', 'zstd']);
    strataOk(store, ['import', path.join(dir, 'full.raw'), 'full']);
    strataOk(store, ['import', path.join(dir, 'half.raw'), 'half']);
    const both = stats(store);
    expect(both.compression.blocks).toBe(512);
    strataOk(store, ['rm', 'full']);
    const after = stats(store);
    expect(after.compression.blocks).toBe(256);
    // Containers with no live fragment left are free; half-dead ones still count.
    expect(after.compression.bytesAfter).toBeLessThanOrEqual(both.compression.bytesAfter);
    const gc = JSON.parse(strataOk(store, ['gc', '--json']).stdout);
    expect(gc.repack.containers).toBeGreaterThan(10);
    expect(gc.repack.slotsAfter).toBeLessThan(gc.repack.slotsBefore);
    const packed = stats(store);
    expect(packed.compression.bytesAfter).toBeLessThan(after.compression.bytesAfter * 0.75);
    expect(read(store, 'half').equals(half)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
    expect(await audit(store)).toEqual([]);
    // Removing the rest empties every container.
    strataOk(store, ['rm', 'half']);
    strataOk(store, ['gc']);
    const empty = stats(store);
    expect(empty.compression).toMatchObject({ blocks: 0, bytesAfter: 0, fragmentBytes: 0 });
    expect(empty.storedBytes).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('compress leaves a block whose bytes no longer match its hash where it is (damaged), and check still names it', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    fs.writeFileSync(path.join(dir, 'in.raw'), rng(13).text(64 * KiB));
    strataOk(store, ['import', path.join(dir, 'in.raw'), 'img']);
    const dat = path.join(store, 'data', '000000.dat');
    const fd = fs.openSync(dat, 'r+');
    fs.writeSync(fd, Buffer.from('damage'), 0, 6, 100); // inside slot 0
    fs.closeSync(fd);
    const r = JSON.parse(strataOk(store, ['compress', '--json']).stdout);
    expect(r.damaged).toBe(1);
    expect(r.compressed).toBe(15);
    const check = strata(store, ['check']);
    expect(check.status).toBe(2);
    expect(check.stdout).toMatch(/slot 0: content does not match its hash/);
  });

  it('check finds a damaged fragment (exit 2, naming the slot) and --repair does not hide it', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    fs.writeFileSync(path.join(dir, 'in.raw'), rng(7).text(256 * KiB));
    strataOk(store, ['import', '--compress', 'zstd', path.join(dir, 'in.raw'), 'img']);
    // Containers are the only slots with data on disk here: flip bytes inside the first one.
    const dat = path.join(store, 'data', '000000.dat');
    const buf = fs.readFileSync(dat);
    const first = buf.findIndex((b) => b !== 0);
    expect(first).toBeGreaterThanOrEqual(0);
    const fd = fs.openSync(dat, 'r+');
    fs.writeSync(fd, Buffer.alloc(64, 0xee), 0, 64, first + 16);
    fs.closeSync(fd);
    const r = strata(store, ['check']);
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/slot \d+: (content does not match its hash|cannot be read \(a (zstd )?fragment)/);
    expect(strata(store, ['check', '--repair']).status).toBe(2);
    const read = strata(store, ['read', 'img']);
    expect(read.status).toBe(ERROR_CODES.E_CORRUPT);
    expect(read.stderr).toMatch(/^strata: a fragment at slot \d+ in 000000\.dat does not decode: compressed fragment does not decode\n$/);
  });

  it('check names a container whose count is off and wrong packed counts; --repair sets them right', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    fs.writeFileSync(path.join(dir, 'in.raw'), rng(12).text(256 * KiB));
    strataOk(store, ['import', '--compress', 'zstd', path.join(dir, 'in.raw'), 'img']);
    const s = await openStore(store, { create: false });
    let container = -1;
    try {
      forEachLiveSlot(s, (slot, _rc, _hash, loc) => {
        if (loc.kind === 'container' && container < 0) container = slot;
      });
      expect(container).toBeGreaterThanOrEqual(0);
      forceRefcount(s, container, refcountOf(s, container) + 5);
      sqlOf(s).prepare("UPDATE meta SET value = value + 7 WHERE key = 'packed_bytes'").run();
    } finally {
      s.close();
    }
    const r = strata(store, ['check']);
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(new RegExp(`container slot ${container}: refcount \\d+, holds \\d+ live fragments`));
    expect(r.stdout).toMatch(/the store counts \d+ packed blocks/);
    expect(strata(store, ['check', '--repair']).status).toBe(0);
    expect(strata(store, ['check']).status).toBe(0);
    expect(await audit(store)).toEqual([]);
    expect(read(store, 'img').equals(fs.readFileSync(path.join(dir, 'in.raw')))).toBe(true);
  });

  it.skipIf(!available(canCompress('zstd') && canCompress('lz4'), 'the native addon has no zstd and lz4 (libzstd-dev, liblz4-dev)'))('compressBatch (off the event loop, for push) gives what compressEach gives, block for block, and decodes back', async () => {
    const data = mixed(9); // 1024 blocks: text-like (shrink), random (do not), zeros, a repeated byte
    const count = data.length / 4096;
    const blocks = Array.from({ length: count }, (_, i) => data.subarray(i * 4096, (i + 1) * 4096));
    for (const spec of [{ codec: 'zstd', level: 3 }, { codec: 'lz4', level: 1 }] as const) {
      const want: Buffer[] = [];
      compressEach(spec, blocks, (_i, buf, at, length) => want.push(Buffer.from(buf.subarray(at, at + length))));
      const { out, sizes } = await compressBatch(spec, data, count);
      const got = Array.from(sizes, (n, i) => out.subarray(i * 4096, i * 4096 + n));
      expect(got.map((b) => b.length)).toEqual(want.map((b) => b.length));
      expect(got.every((b, i) => b.equals(want[i]))).toBe(true);
      expect(sizes.some((n) => n === 0) && sizes.some((n) => n > 0)).toBe(true);
      const back = Buffer.alloc(4096);
      for (let i = 0; i < count; i++) {
        if (sizes[i] === 0) continue;
        decompressBlock(spec.codec === 'zstd' ? 1 : 2, out, i * 4096, sizes[i], back, 0);
        expect(back.equals(blocks[i])).toBe(true);
      }
    }
  });

  it('without the native addon a compressed store reads (zstd by fzstd, lz4 in JS); writing compressed fails cleanly', () => {
    const dir = tmpDir();
    const data = mixed(8);
    fs.writeFileSync(path.join(dir, 'in.raw'), data);
    const noNative = { env: { STRATA_NO_NATIVE: '1' } };
    for (const codec of ['zstd', 'lz4', 'lz4hc']) {
      const store = path.join(dir, codec);
      strataOk(store, ['import', '--compress', codec, path.join(dir, 'in.raw'), 'img']);
      expect(strataOk(store, ['read', 'img'], noNative).out.equals(data)).toBe(true);
      expect(strata(store, ['check'], noNative).status).toBe(0);
      const w = strata(store, ['import', '--compress', codec, path.join(dir, 'in.raw'), 'again'], noNative);
      expect(w.status).toBe(ERROR_CODES.E_UNSUPPORTED);
      // One line of error (the input's text-like content earns a warning before it).
      expect(w.stderr.trim().split('\n').filter((l) => !l.startsWith('strata: warning:')), w.stderr).toHaveLength(1);
      expect(w.stderr).toMatch(new RegExp(`cannot write ${codec}-compressed blocks`));
      expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name)).toEqual(['img']);
    }
  });

  it('a server holding a clone: compress leaves its blocks (busy) and it keeps reading right; after it stops they compress', async () => {
    if (!requireTool('nbdcopy')) return;
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const data = mixed(9);
    fs.writeFileSync(path.join(dir, 'in.raw'), data);
    strataOk(store, ['import', path.join(dir, 'in.raw'), 'base']);
    strataOk(store, ['clone', 'base', 'vm']);
    const srv = await startServe(store, ['vm']);
    try {
      const r = await strataAsync(store, ['compress', '--json']);
      expect(r.status, r.err).toBe(0);
      const rep = JSON.parse(r.out.toString());
      expect(rep.compressed).toBe(0);
      expect(rep.busy).toBeGreaterThan(500);
      const out = path.join(dir, 'out.raw');
      await runOk('nbdcopy', [srv.uri('vm'), out]);
      expect(fs.readFileSync(out).equals(data)).toBe(true);
    } finally {
      await srv.stop();
    }
    const later = JSON.parse(strataOk(store, ['compress', '--json']).stdout);
    expect(later.compressed).toBeGreaterThan(500);
    const srv2 = await startServe(store, ['vm']);
    try {
      const out = path.join(dir, 'out2.raw');
      await runOk('nbdcopy', [srv2.uri('vm'), out]);
      expect(fs.readFileSync(out).equals(data)).toBe(true);
    } finally {
      await srv2.stop();
    }
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('two compressing imports of overlapping data at once, beside a gc loop: both read back, one copy of the shared blocks, check clean', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const r = rng(10);
    const shared = r.text(3 * MiB);
    const a = Buffer.concat([shared, r.text(MiB)]);
    const b = Buffer.concat([shared, r.text(MiB)]);
    fs.writeFileSync(path.join(dir, 'a.raw'), a);
    fs.writeFileSync(path.join(dir, 'b.raw'), b);
    strataOk(store, ['init', '--compress', 'zstd']);
    let stop = false;
    const gcLoop = (async () => {
      let n = 0;
      while (!stop) {
        const g = await strataAsync(store, ['gc']);
        expect(g.status, g.err).toBe(0);
        n++;
      }
      return n;
    })();
    const [ra, rb] = await Promise.all([
      strataAsync(store, ['import', path.join(dir, 'a.raw'), 'a', '--dirty-limit', '512K']),
      strataAsync(store, ['import', path.join(dir, 'b.raw'), 'b', '--dirty-limit', '512K']),
    ]);
    stop = true;
    expect(await gcLoop).toBeGreaterThan(0);
    expect(ra.status, ra.err).toBe(0);
    expect(rb.status, rb.err).toBe(0);
    expect(read(store, 'a').equals(a)).toBe(true);
    expect(read(store, 'b').equals(b)).toBe(true);
    // Shared blocks raced: each may have been stored by both before either indexed it, never lost.
    expect(stats(store).distinctBytes).toBeLessThanOrEqual(8 * MiB);
    expect(strata(store, ['check']).status).toBe(0);
    expect(await audit(store)).toEqual([]);
  });
});
