/**
 * Eviction is a move too (store/evict.ts): a block's local copy goes, its
 * location becomes the bucket's. A pinned reader of a leaf that opened
 * before may still look for the block in its old place, after the leaf was
 * overwritten and only a lazy clone still names it; that place must hold the
 * bytes until the reader has gone (#22 item 1). Real processes and the
 * loopback Ceph RGW.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { blocksNotFrom, PinnedReader } from '../helpers/pinned-reader.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const SIZE = 256 * 1024;

afterEach(() => PinnedReader.killAll());

describe.skipIf(!haveRgw())('a pinned reader of a leaf across an eviction of its blocks (Ceph RGW)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  it('reads the flushed bytes, not holes, after remote evict; gc punches the old places once it has gone', async () => {
    const dir = tmpDir();
    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    const bucket = freshBucket('evictreader');
    const old = rng(231).bytes(SIZE);
    const fresh = rng(232).bytes(SIZE);
    for (const s of [A, B]) {
      strataOk(s, ['init']);
      strataOk(s, ['remote', 'add', 'fleet', `s3://${bucket}`, '--create', '--endpoint', endpoint]);
    }
    fs.writeFileSync(path.join(dir, 'deb.raw'), old);
    strataOk(A, ['create', 'deb', '--from', path.join(dir, 'deb.raw')]);
    strataOk(A, ['freeze', 'deb']);
    strataOk(A, ['push', 'deb', 'fleet']);
    // B: a lazy clone, read in full (every block fetched, so cached and evictable) ...
    strataOk(B, ['clone', 'fleet/deb', 'vm']);
    expect(strataOk(B, ['read', 'vm']).out.equals(old)).toBe(true);
    // ... and a leaf of its own whose blocks deduplicate into the fetched ones.
    strataOk(B, ['create', 'leaf', '--size', `${SIZE}`]);
    strataOk(B, ['write', 'leaf'], { input: old });
    expect(JSON.parse(strataOk(B, ['remote', 'evict', 'fleet', '--to', '0', '--json']).stdout).evictedBlocks).toBe(0); // the leaf's: local data

    const { reader, first } = await PinnedReader.open(B, 'leaf', path.join(dir, 'seen'));
    expect(first.equals(old)).toBe(true);
    // Overwritten: only the lazy clone names those blocks now, so they are cache again, and evicted.
    strataOk(B, ['write', 'leaf'], { input: fresh });
    const e = JSON.parse(strataOk(B, ['remote', 'evict', 'fleet', '--to', '0', '--json']).stdout) as { evictedBlocks: number };
    expect(e.evictedBlocks).toBe(SIZE / 4096);

    const seen = await reader.read();
    expect(blocksNotFrom(seen, [old, fresh])).toEqual([]);
    expect(seen.equals(old)).toBe(true);
    await reader.close();

    const check = strata(B, ['check']);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const gc = JSON.parse(strataOk(B, ['gc', '--json']).stdout) as { repack: { placesPunched: number } };
    expect(gc.repack.placesPunched).toBe(SIZE / 4096);
    // Read again, the clone's blocks come from the bucket.
    expect(strataOk(B, ['read', 'vm']).out.equals(old)).toBe(true);
    expect(strataOk(B, ['read', 'leaf']).out.equals(fresh)).toBe(true);
  });
});
