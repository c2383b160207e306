/**
 * The size limit of a remote's local cache (remote/store-side/cache-limit.ts,
 * store/evict.ts), against a real Ceph RGW (no mock): a lazy clone read in
 * full leaves at most the limit cached; an evicted block reads back
 * byte-identical, fetched again (counted); blocks a leaf wrote or an
 * imported image shares are never evicted; a served clone's blocks are not
 * evicted while the server holds it; check stays clean; bad sizes are
 * refused and change nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/core/store.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { openImage } from '../../src/image/image.js';
import { LazyFetcher, fetchForRead } from '../../src/remote/store-side/lazy.js';
import { openRemote } from '../../src/remote/remote.js';
import { remoteBlockCount } from '../../src/store/blocks/remote-locs.js';
import { remoteSlotsOf } from '../../src/store/blocks/locations.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { distinctBlocks as distinct } from '../helpers/blocks.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 4 * MiB;

/** An image of random and text blocks (no two alike), some zero. */
function makeImage(seed: number): Buffer {
  const img = Buffer.alloc(SIZE);
  const r = rng(seed);
  r.bytes(1 * MiB).copy(img);
  r.bytes(1 * MiB).copy(img, 2 * MiB);
  return img;
}

interface CacheJson {
  limit: number | null;
  cachedBlocks: number;
  cachedBytes: number;
  inUseBytes: number;
}

const cacheOf = (store: string, name = 'fleet'): CacheJson =>
  (JSON.parse(strataOk(store, ['remote', 'ls', '--json']).stdout) as { remotes: { name: string; cache: CacheJson }[] }).remotes.find((r) => r.name === name)!.cache;

const evict = (store: string, args: string[] = []) =>
  JSON.parse(strataOk(store, ['remote', 'evict', 'fleet', ...args, '--json']).stdout) as {
    evictedBlocks: number;
    evictedBytes: number;
    keptInUseBlocks: number;
    cachedBytesBefore: number;
    cachedBytesAfter: number;
  };

const remoteBlocksOf = (store: string): number => (JSON.parse(strataOk(store, ['stats', '--json']).stdout) as { remoteBytes: number }).remoteBytes / 4096;

describe.skipIf(!haveRgw())('the local cache of remote blocks has a size limit (Ceph RGW)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  /** Store A pushes `images` (name -> bytes); store B knows the remote, with `cacheSize`. */
  function setup(what: string, images: Record<string, Buffer>, cacheSize?: string): { dir: string; A: string; B: string } {
    const dir = tmpDir();
    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    const bucket = freshBucket(what);
    strataOk(A, ['init']);
    strataOk(A, ['remote', 'add', 'fleet', `s3://${bucket}`, '--create', '--endpoint', endpoint]);
    strataOk(B, ['init']);
    strataOk(B, ['remote', 'add', 'fleet', `s3://${bucket}`, '--create', '--endpoint', endpoint, ...(cacheSize ? ['--cache-size', cacheSize] : [])]);
    for (const [name, bytes] of Object.entries(images)) {
      const file = path.join(dir, `${name}.raw`);
      fs.writeFileSync(file, bytes);
      strataOk(A, ['create', name, '--from', file]);
      strataOk(A, ['freeze', name]);
      strataOk(A, ['push', name, 'fleet', '--pack-size', '1M']);
    }
    return { dir, A, B };
  }

  it('a full read leaves at most the limit cached; evicted blocks read back byte-identical, fetched again', async () => {
    const img = makeImage(91);
    const n = distinct(img).size;
    const { dir, B } = setup('cachelimit', { deb: img }, '256K');
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    expect(cacheOf(B)).toMatchObject({ limit: 256 * KiB, cachedBlocks: 0 });

    // The read fetches everything (the image held open meanwhile), then lets go: the cache shrinks.
    strataOk(B, ['read', 'vm7', path.join(dir, 'out.raw')]);
    expect(fs.readFileSync(path.join(dir, 'out.raw')).equals(img)).toBe(true);
    const after = cacheOf(B);
    expect(after.cachedBytes).toBeGreaterThan(0);
    expect(after.cachedBytes).toBeLessThanOrEqual(256 * KiB);
    // stats: what is here and what is in the bucket add up to the distinct blocks.
    const stats = JSON.parse(strataOk(B, ['stats', '--json']).stdout) as { storedBytes: number; remoteBytes: number; distinctBytes: number; dataFiles: { allocatedBytes: number } };
    expect(stats.remoteBytes).toBe((n - after.cachedBlocks) * 4096);
    expect(stats.storedBytes).toBe(after.cachedBytes);
    expect(stats.distinctBytes).toBe(n * 4096);
    // Evicted bytes were punched: the data files hold about the cache, not the image.
    expect(stats.dataFiles.allocatedBytes).toBeLessThanOrEqual(256 * KiB + 64 * KiB);
    strataOk(B, ['check']);

    // Everything evicted is fetched again, exactly that, and reads back byte-identical.
    const store = await openStore(B);
    try {
      const far = remoteBlockCount(store);
      expect(far).toBe(n - after.cachedBlocks);
      const vm = openImage(store, 'vm7');
      const f = await fetchForRead(store, vm);
      try {
        expect(f.stats!.blocks).toBe(far);
        expect(f.stats!.gets).toBeGreaterThan(0);
        expect(f.stats!.bytes).toBeGreaterThanOrEqual(far * 4096);
        expect(vm.read(0, SIZE).equals(img)).toBe(true);
      } finally {
        vm.close();
        await f.done();
      }
      // Let go again: back under the limit.
      expect(remoteBlockCount(store)).toBeGreaterThanOrEqual(n - 64);
      expect(checkStore(store).status).toBe('clean');
    } finally {
      store.close();
    }
    expect(cacheOf(B).cachedBytes).toBeLessThanOrEqual(256 * KiB);

    // A limit changed later applies at the next eviction; `evict --to` goes lower still.
    strataOk(B, ['remote', 'set', 'fleet', '--cache-size', '128K']);
    expect(cacheOf(B).limit).toBe(128 * KiB);
    const e1 = evict(B);
    expect(e1.cachedBytesAfter).toBeLessThanOrEqual(128 * KiB);
    const e2 = evict(B, ['--to', '0']);
    expect(e2.cachedBytesAfter).toBe(0);
    expect(e2.evictedBytes).toBe(e1.cachedBytesAfter);
    expect(remoteBlocksOf(B)).toBe(n);
    strataOk(B, ['check']);
    // A fetch batch that takes the cache over its limit evicts right after, the fetched blocks too
    // when no image holding them is open.
    strataOk(B, ['remote', 'set', 'fleet', '--cache-size', '128K']);
    const s3 = await openStore(B);
    const fetcher = new LazyFetcher(s3, (name) => openRemote(B, name));
    try {
      const vm = openImage(s3, 'vm7');
      const slots = vm.slotsIn(0, SIZE);
      vm.close();
      expect(await fetcher.ensure(slots)).toBe(n);
      expect(fetcher.stats.blocks).toBe(n);
    } finally {
      fetcher.close();
      s3.close();
    }
    expect(cacheOf(B).cachedBytes).toBeLessThanOrEqual(128 * KiB);
    expect(cacheOf(B).cachedBytes).toBeGreaterThan(0);
    strataOk(B, ['check']);
    // And from little cached, a plain read still gets the right bytes.
    expect(strataOk(B, ['read', 'vm7', '--offset', '2M', '--length', '64K']).out.equals(img.subarray(2 * MiB, 2 * MiB + 64 * KiB))).toBe(true);
    strataOk(B, ['check']);
  }, 180_000);

  it('never evicts blocks the leaf wrote or that an imported image shares', async () => {
    const img = makeImage(92);
    const n = distinct(img).size;
    const { dir, B } = setup('cacheown', { deb: img });
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    strataOk(B, ['read', 'vm7', path.join(dir, 'all.raw')]);
    expect(cacheOf(B).cachedBlocks).toBe(n);

    // An import whose first 256 KiB equal the image's: it deduplicates into fetched blocks.
    const shared = img.subarray(0, 256 * KiB);
    fs.writeFileSync(path.join(dir, 'part.raw'), shared);
    strataOk(B, ['create', 'part', '--from', path.join(dir, 'part.raw')]);
    // The leaf writes a block equal to one of the image's (shared by dedup) and a new one.
    const twin = img.subarray(2 * MiB, 2 * MiB + 4096);
    const fresh = Buffer.alloc(4096, 0x5a);
    const store = await openStore(B);
    try {
      const vm = openImage(store, 'vm7', { writable: true });
      try {
        vm.write(3 * MiB, twin);
        vm.write(3 * MiB + 4096, fresh);
        vm.flush();
      } finally {
        vm.close();
      }
    } finally {
      store.close();
    }
    const owned = distinct(shared).size + 1;
    expect(cacheOf(B).cachedBlocks).toBe(n - owned);

    const e = evict(B, ['--to', '0']);
    expect(e.evictedBlocks).toBe(n - owned);
    expect(e.cachedBytesAfter).toBe(0);
    expect(remoteBlocksOf(B)).toBe(n - owned);
    strataOk(B, ['check']);

    const s2 = await openStore(B);
    try {
      // The import and the leaf's own blocks are all here: nothing to fetch to read them.
      const part = openImage(s2, 'part');
      try {
        expect(remoteSlotsOf(s2, part.slotsIn(0, part.size))).toEqual([]);
        expect(part.read(0, part.size).equals(shared)).toBe(true);
      } finally {
        part.close();
      }
      const vm = openImage(s2, 'vm7');
      try {
        expect(remoteSlotsOf(s2, vm.slotsIn(3 * MiB, 8192))).toEqual([]);
        expect(vm.read(3 * MiB, 8192).equals(Buffer.concat([twin, fresh]))).toBe(true);
      } finally {
        vm.close();
      }
    } finally {
      s2.close();
    }
    // The whole leaf reads back right, evicted blocks fetched again.
    const want = Buffer.from(img);
    twin.copy(want, 3 * MiB);
    fresh.copy(want, 3 * MiB + 4096);
    strataOk(B, ['read', 'vm7', path.join(dir, 'again.raw')]);
    expect(fs.readFileSync(path.join(dir, 'again.raw')).equals(want)).toBe(true);
    strataOk(B, ['check']);
  }, 180_000);

  it('evicts none of the blocks of a clone a server holds open, and them once it stops', async () => {
    const deb = makeImage(93);
    const other = makeImage(94);
    const { dir, B } = setup('cacheserve', { deb, other });
    strataOk(B, ['clone', 'fleet/deb', 'vm7']);
    strataOk(B, ['clone', 'fleet/other', 'vm8']);
    strataOk(B, ['read', 'vm7', path.join(dir, 'a.raw')]);
    strataOk(B, ['read', 'vm8', path.join(dir, 'b.raw')]);
    const nDeb = distinct(deb).size;
    const nOther = distinct(other).size;
    expect(cacheOf(B).cachedBlocks).toBe(nDeb + nOther);

    const served = await startServe(B, ['vm7']);
    try {
      expect(cacheOf(B).inUseBytes).toBe(nDeb * 4096);
      const e = evict(B, ['--to', '0']);
      // Only the idle clone's blocks went; the served one's all stayed.
      expect(e.evictedBlocks).toBe(nOther);
      expect(e.keptInUseBlocks).toBe(nDeb);
      expect(remoteBlocksOf(B)).toBe(nOther);
      const r = strata(B, ['check']);
      expect(r.status, r.stderr).toBe(0);
    } finally {
      await served.stop();
    }
    // Stopped: its blocks are idle now.
    const e = evict(B, ['--to', '0']);
    expect(e.evictedBlocks).toBe(nDeb);
    expect(remoteBlocksOf(B)).toBe(nDeb + nOther);
    strataOk(B, ['check']);
    strataOk(B, ['read', 'vm7', path.join(dir, 'a2.raw')]);
    expect(fs.readFileSync(path.join(dir, 'a2.raw')).equals(deb)).toBe(true);
  }, 180_000);
});

describe('cache size input', () => {
  it('a bad --cache-size is a one-line error with E_BAD_INPUT status and changes nothing', () => {
    const S = path.join(tmpDir(), 'S');
    strataOk(S, ['init']);
    for (const bad of ['abc', '-1', '-5G', '1.5']) {
      const r = strata(S, ['remote', 'add', 'f', 's3://some-bucket', '--endpoint', 'http://127.0.0.1:9', '--no-check', `--cache-size=${bad}`]);
      expect(r.status, bad).toBe(2);
      expect(r.stderr.trim().split('\n'), bad).toHaveLength(1);
      expect(r.stderr).toContain('cache size');
    }
    expect(JSON.parse(strataOk(S, ['remote', 'ls', '--json']).stdout).remotes).toEqual([]);

    strataOk(S, ['remote', 'add', 'f', 's3://some-bucket', '--endpoint', 'http://127.0.0.1:9', '--no-check', '--cache-size', '512M']);
    const before = fs.readFileSync(path.join(S, 'remotes', 'f', 'remote.json'), 'utf8');
    for (const bad of ['abc', '-1', '']) {
      const r = strata(S, ['remote', 'set', 'f', `--cache-size=${bad}`]);
      expect(r.status, bad).toBe(2);
      expect(r.stderr.trim().split('\n'), bad).toHaveLength(1);
    }
    const r = strata(S, ['remote', 'evict', 'f', '--to', 'lots']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.readFileSync(path.join(S, 'remotes', 'f', 'remote.json'), 'utf8')).toBe(before);
    expect(strata(S, ['remote', 'set', 'nope', '--cache-size', '1G']).status).toBe(3);

    // Good ones: 10G, and none to remove the limit.
    strataOk(S, ['remote', 'set', 'f', '--cache-size', '10G']);
    const ls = () => JSON.parse(strataOk(S, ['remote', 'ls', '--json']).stdout).remotes[0].cache as CacheJson;
    expect(ls()).toMatchObject({ limit: 10 * 1024 * MiB, cachedBytes: 0 });
    strataOk(S, ['remote', 'set', 'f', '--cache-size', 'none']);
    expect(ls().limit).toBeNull();
    expect(strataOk(S, ['remote', 'ls']).stdout).toMatch(/CACHED/);
  });
});
