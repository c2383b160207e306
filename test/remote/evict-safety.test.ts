/**
 * Eviction drops a local copy only while the bucket still holds the block
 * (#22 item 2), against the loopback Ceph RGW: after another host's
 * `remote delete` + `remote gc`, or with a pack gone that an index still
 * names, `remote evict --to 0` keeps every block whose only copy is here
 * (a layer whose bucket copy is gone becomes an ordinary local image, no
 * longer cache); the lazy clone then reads back byte-identical and `strata
 * check` is clean.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBucket } from '../../src/remote/s3.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const BLOCKS = 512; // 2 MiB of distinct random blocks

interface EvictJson {
  evictedBlocks: number;
  unplacedBlocks: number;
  cachedBytesBefore: number;
  cachedBytesAfter: number;
}
const cacheOf = (store: string): { cachedBlocks: number } =>
  (JSON.parse(strataOk(store, ['remote', 'ls', '--json']).stdout) as { remotes: { name: string; cache: { cachedBlocks: number } }[] }).remotes.find((r) => r.name === 'fleet')!.cache;
const evict = (store: string): EvictJson => JSON.parse(strataOk(store, ['--json', 'remote', 'evict', 'fleet', '--to', '0']).stdout) as EvictJson;

describe.skipIf(!haveRgw())('eviction keeps blocks the bucket no longer has (Ceph RGW)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  /** Store A pushes `img`; store B clones it lazily and reads it whole (every block fetched and cached). */
  function setup(what: string) {
    const dir = tmpDir();
    const data = rng(2202).bytes(2 * MiB);
    fs.writeFileSync(path.join(dir, 'img.raw'), data);
    const bucketName = freshBucket(what);
    const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
    storesOnBucket([A, B], bucketName);
    strataOk(A, ['create', 'img', '--from', path.join(dir, 'img.raw')]);
    strataOk(A, ['push', 'img', 'fleet', '--pack-size', '1M']);
    strataOk(B, ['clone', 'fleet/img', 'vm']);
    expect(strataOk(B, ['read', 'vm']).out.equals(data)).toBe(true);
    return { dir, data, A, B, bucket: openBucket({ bucket: bucketName, endpoint }) };
  }

  /** B's clone reads back whole and check finds nothing wrong. */
  function intact(B: string, data: Buffer) {
    const read = strata(B, ['read', 'vm']);
    expect(read.stderr).toBe('');
    expect(read.status).toBe(0);
    expect(read.out.equals(data)).toBe(true);
    const check = strata(B, ['--json', 'check']);
    expect(check.status).toBe(0);
    expect(JSON.parse(check.stdout).status).toBe('clean');
  }

  it("after another store's remote delete + remote gc, evict --to 0 keeps every block; the clone reads back byte-identical and check is clean", async () => {
    const { data, A, B, bucket } = setup('evgone');
    try {
      strataOk(A, ['remote', 'delete', 'fleet/img']);
      strataOk(A, ['remote', 'gc', 'fleet']);
      expect(await bucket.list('packs/')).toEqual([]);

      const cachedBefore = cacheOf(B).cachedBlocks;
      expect(cachedBefore).toBe(BLOCKS);
      const e = evict(B);
      expect(e.evictedBlocks).toBe(0);
      // The local copy is the only one: the layer is an ordinary local image now, no longer cache.
      expect(e.cachedBytesAfter).toBe(0);
      expect(cacheOf(B).cachedBlocks).toBe(0);
      intact(B, data);
      // Nothing evicts it later either.
      expect(evict(B).evictedBlocks).toBe(0);
      intact(B, data);
    } finally {
      bucket.close();
    }
  });

  it('keeps the blocks of a pack the bucket lost while an index still names it, and evicts the rest, which read back fetched again', async () => {
    const { data, B, bucket } = setup('evpack');
    try {
      const packs = await bucket.list('packs/');
      expect(packs.length).toBeGreaterThanOrEqual(2);
      // A pack deleted under an index that still names it (a gc that ran after this store synced).
      await bucket.remove(packs[0].key);

      const e = evict(B);
      expect(e.unplacedBlocks).toBeGreaterThan(0);
      expect(e.evictedBlocks).toBe(BLOCKS - e.unplacedBlocks);
      expect(e.cachedBytesAfter).toBe(e.unplacedBlocks * 4096);
      intact(B, data);
    } finally {
      bucket.close();
    }
  });
});
