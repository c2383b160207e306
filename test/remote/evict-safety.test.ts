/**
 * Eviction drops a local copy only while the bucket still holds the block
 * (#22 item 2), against the loopback Ceph RGW: after another host's
 * `remote delete` + `remote gc`, or with a pack gone that an index still
 * names, `remote evict --to 0` keeps every block whose only copy is here
 * (a layer whose bucket copy is gone becomes an ordinary local image, no
 * longer cache); the lazy clone then reads back byte-identical and `strata
 * check` is clean.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { expectIntact, pushAndCloneLazily } from '../helpers/lazy-clone.js';
import { haveRgw, rgw } from '../helpers/rgw.js';

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
  beforeAll(() => {
    rgw();
  });

  /** Store A pushes `img`; store B clones it lazily and reads it whole (every block fetched and cached). */
  function setup(what: string) {
    const pair = pushAndCloneLazily(what, 2202);
    expect(strataOk(pair.B, ['read', 'vm']).out.equals(pair.data)).toBe(true);
    return pair;
  }

  /** B's clone reads back whole and check finds nothing wrong. */
  const intact = (B: string, data: Buffer) => expectIntact(B, 'vm', data);

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
