/**
 * A push reads every block it uploads through the verified read path: a
 * block rotted on disk is never uploaded as if it were the image's (the
 * bucket would then hand the damage to every host that pulls it). The push
 * fails with E_CORRUPT naming the image and byte offset, and the bucket gets
 * no manifest of the image.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openBucket } from '../../src/remote/s3.js';
import { strata, strataOk } from '../helpers/cli.js';
import { BLOCK, DAMAGED_AT, flipBytes, makeDamagedStore } from '../helpers/damaged-store.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

describe.skipIf(!haveRgw())('push of an image with a damaged block (Ceph RGW)', () => {
  it('fails with E_CORRUPT naming the image and offset, and the bucket gets no manifest', async () => {
    const store = path.join(tmpDir(), 'store');
    const bucketName = freshBucket('damaged');
    storesOnBucket([store], bucketName);
    // Made before the damage: a store marked damaged refuses writes until check --repair (store/core/damage.ts).
    strataOk(store, ['create', 'ok', '--size', '64K']);
    strataOk(store, ['write', 'ok'], { input: Buffer.alloc(64 * 1024, 9) });
    strataOk(store, ['freeze', 'ok']);
    const slot = makeDamagedStore(store);
    flipBytes(store, slot * BLOCK + 100, 8);
    const r = strata(store, ['push', 'base', 'fleet']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: ERROR_CODES.E_CORRUPT,
      stderr: `strata: image base: the block at byte offset ${DAMAGED_AT} (slot ${slot}) is damaged: its bytes do not match the hash recorded for them\n`,
    });
    const bucket = openBucket({ bucket: bucketName, endpoint: rgw().endpoint });
    const manifests = async () => (await bucket.list('')).map((o) => o.key).filter((k) => /(^|\/)manifests\//.test(k));
    expect(await manifests()).toEqual([]);
    // A sound image beside it pushes, and its manifest is the only one.
    strataOk(store, ['push', 'ok', 'fleet']);
    expect((await manifests()).map((k) => k.replace(/.*manifests\//, '').split('/')[0])).toEqual(['ok']);
  });
});
