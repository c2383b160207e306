/**
 * Lazy clones over a remote image, against a real Ceph RGW (no mock) and a
 * directory bucket (file://): a
 * leaf over a pushed image is made without fetching a block; a read of a
 * block still remote is E_IO, never zeros; the fetcher fetches only the
 * blocks a read touches (counted in GETs and blocks), checks each against
 * its digest and keeps it locally, after which the store checks clean.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/core/store.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { openImage } from '../../src/image/image.js';
import { openRemote } from '../../src/remote/remote.js';
import { LazyFetcher, lazyClone } from '../../src/remote/store-side/lazy.js';
import { remoteBlockCount } from '../../src/store/blocks/remote-locs.js';
import { strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { REMOTE_KINDS, storesOn } from '../helpers/remotes.js';
import { tmpDir } from '../helpers/tmp.js';
import { distinctBlocks as distinct } from '../helpers/blocks.js';
import { sqlOf } from '../helpers/sql.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

describe.each(REMOTE_KINDS)('lazy clones over a remote image ($name)', (kind) => {
  beforeEach((ctx) => {
    if (!kind.available()) ctx.skip();
  });

  it('makes a leaf without fetching, fetches only what reads touch, verified, and keeps it', async () => {
    const dir = tmpDir();
    const r = rng(77);
    const img = Buffer.alloc(SIZE);
    r.text(6 * MiB).copy(img);
    r.bytes(2 * MiB).copy(img, 8 * MiB);
    const file = path.join(dir, 'src.raw');
    fs.writeFileSync(file, img);
    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    storesOn([A, B], kind.fresh('lazy'));
    strataOk(A, ['create', 'deb', '--from', file]);
    strataOk(A, ['freeze', 'deb']);
    strataOk(A, ['push', 'deb', 'fleet', '--pack-size', '1M']);

    const store = await openStore(B);
    const remote = openRemote(B, 'fleet');
    const fetcher = new LazyFetcher(store, (name) => openRemote(B, name));
    try {
      const made = await lazyClone(store, remote, 'deb', 'vm7');
      expect(made.leaf).toBe('vm7');
      expect(made.remoteBlocks).toBe(distinct(img).size);
      expect(remoteBlockCount(store)).toBe(distinct(img).size);
      expect(fs.existsSync(path.join(B, 'data')) ? fs.readdirSync(path.join(B, 'data')).reduce((n, f) => n + fs.statSync(path.join(B, 'data', f)).blocks, 0) : 0).toBe(0);

      const vm = openImage(store, 'vm7', { writable: true });
      try {
        // Not fetched yet: an I/O error, never zeros.
        expect(() => vm.read(1 * MiB, 64 * 1024)).toThrow(expect.objectContaining({ code: 'E_IO' }));
        // Zero blocks need nothing.
        expect(vm.read(12 * MiB, 64 * 1024).equals(Buffer.alloc(64 * 1024))).toBe(true);

        // 64 KiB at 1 MiB and 64 KiB at 9 MiB: only their blocks are fetched.
        for (const at of [1 * MiB, 9 * MiB]) await fetcher.ensure(vm.slotsIn(at, 64 * 1024));
        expect(fetcher.stats.blocks).toBe(distinct(img.subarray(MiB, MiB + 65536)).size + distinct(img.subarray(9 * MiB, 9 * MiB + 65536)).size);
        expect(fetcher.stats.gets).toBe(2);
        expect(vm.read(1 * MiB, 64 * 1024).equals(img.subarray(MiB, MiB + 65536))).toBe(true);
        expect(vm.read(9 * MiB, 64 * 1024).equals(img.subarray(9 * MiB, 9 * MiB + 65536))).toBe(true);
        // Fetched once: asking again fetches nothing.
        expect(await fetcher.ensure(vm.slotsIn(1 * MiB, 64 * 1024))).toBe(0);
        expect(fetcher.stats.gets).toBe(2);

        // The whole image, then: byte-identical, and nothing is remote any more.
        await fetcher.ensure(vm.slotsIn(0, SIZE));
        expect(vm.read(0, SIZE).equals(img)).toBe(true);
        expect(fetcher.stats.blocks).toBe(distinct(img).size);
        expect(remoteBlockCount(store)).toBe(0);
        // A write to the leaf works like on any leaf.
        vm.write(0, Buffer.alloc(4096, 7));
        vm.flush();
      } finally {
        vm.close();
      }
      expect(checkStore(store).status).toBe('clean');
    } finally {
      fetcher.close();
      remote.close();
      store.close();
    }
  }, 120_000);

  it('removing a lazy clone and its layer frees its blocks, fetched or not, and the store checks clean', async () => {
    const dir = tmpDir();
    const img = Buffer.alloc(SIZE);
    rng(78).text(4 * MiB).copy(img);
    const file = path.join(dir, 'src.raw');
    fs.writeFileSync(file, img);
    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    storesOn([A, B], kind.fresh('lazyrm'));
    strataOk(A, ['create', 'deb', '--from', file]);
    strataOk(A, ['freeze', 'deb']);
    strataOk(A, ['push', 'deb', 'fleet']);
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    // Part of it fetched, part not.
    strataOk(B, ['read', 'vm7', path.join(dir, 'part.raw'), '--offset', '1M', '--length', '256K']);
    strataOk(B, ['check']);
    strataOk(B, ['rm', 'vm7']);
    strataOk(B, ['rm', 'deb']);
    const store = await openStore(B);
    try {
      expect(remoteBlockCount(store)).toBe(0);
      expect(sqlOf(store).prepare("SELECT value FROM meta WHERE key = 'remote_blocks'").pluck().get()).toBe(0);
      expect(checkStore(store).status).toBe('clean');
    } finally {
      store.close();
    }
    strataOk(B, ['gc']);
    strataOk(B, ['check']);
  }, 120_000);

  it('a snapshot of a lazy clone pushes without fetching to its own remote, and fetching first to another; both pull byte-identical', async () => {
    const dir = tmpDir();
    const r = rng(81);
    const img = Buffer.alloc(8 * MiB);
    r.text(4 * MiB).copy(img);
    const file = path.join(dir, 'src.raw');
    fs.writeFileSync(file, img);
    const [A, B, C] = ['A', 'B', 'C'].map((n) => path.join(dir, n));
    const [fleet, other] = [kind.fresh('lazypush'), kind.fresh('lazyother')];
    for (const s of [A, B, C]) {
      strataOk(s, ['init']);
      strataOk(s, ['remote', 'add', 'fleet', ...fleet.addArgs]);
      strataOk(s, ['remote', 'add', 'other', ...other.addArgs]);
    }
    strataOk(A, ['create', 'deb', '--from', file]);
    strataOk(A, ['push', 'deb', 'fleet']);
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    const mine = r.text(64 * 1024);
    strataOk(B, ['write', 'vm7', '--offset', '1M'], { input: mine });
    strataOk(B, ['snapshot', 'vm7', 's1']);
    const want = Buffer.from(img);
    mine.copy(want, MiB);
    const remoteNow = async () => {
      const st = await openStore(B);
      try {
        return remoteBlockCount(st);
      } finally {
        st.close();
      }
    };
    const before = await remoteNow();
    expect(before).toBe(distinct(img).size);

    // To fleet: the lazy base is the bucket's own layer; only the snapshot's 16 blocks go up.
    const toFleet = JSON.parse(strataOk(B, ['--json', 'push', 'vm7@s1', 'fleet']).stdout);
    expect(toFleet.newBlocks).toBe(16);
    expect(toFleet.layers.map((l: { uploaded: boolean }) => l.uploaded)).toEqual([false, true]);
    expect(await remoteNow()).toBe(before);

    // To another bucket: its blocks are fetched first (then local), and both layers go up whole.
    const toOther = JSON.parse(strataOk(B, ['--json', 'push', 'vm7@s1', 'other']).stdout);
    expect(toOther.newBlocks).toBe(distinct(img).size + 16);
    expect(await remoteNow()).toBe(0);
    strataOk(B, ['check']);

    for (const remote of ['fleet', 'other']) {
      const st = path.join(dir, `C-${remote}`);
      strataOk(st, ['init']);
      strataOk(st, ['remote', 'add', remote, ...(remote === 'fleet' ? fleet : other).addArgs]);
      strataOk(st, ['pull', `${remote}/vm7@s1`]);
      const out = path.join(dir, `out-${remote}.raw`);
      strataOk(st, ['export', 'vm7@s1', out]);
      expect(fs.readFileSync(out).equals(want)).toBe(true);
    }
  }, 180_000);

  it('pull of an image already cloned lazily fetches the rest and makes it an ordinary image: evict leaves it whole', async () => {
    const dir = tmpDir();
    const img = rng(83).text(4 * MiB);
    const file = path.join(dir, 'src.raw');
    fs.writeFileSync(file, img);
    const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
    storesOn([A, B], kind.fresh('lazypull'));
    strataOk(A, ['create', 'deb', '--from', file]);
    strataOk(A, ['push', 'deb', 'fleet']);
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    strataOk(B, ['read', 'vm7', path.join(dir, 'part.raw'), '--length', '64K']);
    const pulled = JSON.parse(strataOk(B, ['--json', 'pull', 'fleet/deb']).stdout);
    expect(pulled.layers).toEqual([expect.objectContaining({ name: 'deb', reused: true })]);
    const evicted = JSON.parse(strataOk(B, ['--json', 'remote', 'evict', 'fleet', '--to', '0']).stdout);
    expect(evicted.evictedBlocks).toBe(0);
    const st = await openStore(B);
    try {
      expect(remoteBlockCount(st)).toBe(0);
    } finally {
      st.close();
    }
    const out = path.join(dir, 'out.raw');
    strataOk(B, ['export', 'deb', out]);
    expect(fs.readFileSync(out).equals(img)).toBe(true);
    strataOk(B, ['check']);
  }, 120_000);
});
