// The loopback RGW itself: signed S3 requests through the SDK strata uses, a ranged GET.
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';

describe.skipIf(!haveRgw())('loopback Ceph RGW', () => {
  it('takes a signed PUT and answers GET and ranged GET', async () => {
    const { endpoint } = rgw();
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const s3 = new S3Client({ endpoint, forcePathStyle: true });
    const Bucket = freshBucket('rgw');
    await s3.send(new CreateBucketCommand({ Bucket }));
    const body = Buffer.from('0123456789abcdef'.repeat(1024));
    await s3.send(new PutObjectCommand({ Bucket, Key: 'x/y', Body: body }));
    const all = await s3.send(new GetObjectCommand({ Bucket, Key: 'x/y' }));
    expect(Buffer.from(await all.Body!.transformToByteArray()).equals(body)).toBe(true);
    const part = await s3.send(new GetObjectCommand({ Bucket, Key: 'x/y', Range: 'bytes=10-25' }));
    expect(Buffer.from(await part.Body!.transformToByteArray()).toString()).toBe('abcdef0123456789');
    expect(part.ContentRange).toBe(`bytes 10-25/${body.length}`);
    await s3.send(new DeleteObjectCommand({ Bucket, Key: 'x/y' }));
    s3.destroy();
  });
});

describe.skipIf(!haveRgw())('the bucket wrapper (src/remote/s3.ts) on RGW', () => {
  it('uploads a large object in parts, reads ranges of it, lists, and names what is missing', async () => {
    const { openBucket } = await import('../../src/remote/s3.js');
    const { endpoint } = rgw();
    const b = openBucket({ bucket: freshBucket('s3ts'), endpoint, multipartBytes: 6 * 1024 * 1024, partBytes: 5 * 1024 * 1024 });
    try {
      await b.ensure();
      await b.ensure(); // idempotent
      const big = Buffer.alloc(13 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
      await b.put('p/big', big); // three parts
      expect((await b.get('p/big', big.length)).equals(big)).toBe(true);
      // One byte over the limit: refused by its length, unread.
      await expect(b.get('p/big', big.length - 1)).rejects.toMatchObject({ code: 'E_CORRUPT', data: { key: 'p/big', size: big.length, limit: big.length - 1 } });
      expect((await b.getRange('p/big', 5 * 1024 * 1024 - 8, 5 * 1024 * 1024 + 8)).equals(big.subarray(5 * 1024 * 1024 - 8, 5 * 1024 * 1024 + 8))).toBe(true);
      await b.put('p/small', Buffer.from('x'));
      expect((await b.list('p/')).map((o) => [o.key, o.size])).toEqual([
        ['p/big', big.length],
        ['p/small', 1],
      ]);
      expect(await b.has('p/small')).toBe(true);
      expect(await b.has('p/none')).toBe(false);
      await expect(b.get('p/none', 4096)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    } finally {
      b.close();
    }
  });

  it('a dead endpoint is E_IO after its retries, not a hang', async () => {
    const { openBucket } = await import('../../src/remote/s3.js');
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    const b = openBucket({ bucket: 'nobody', endpoint: 'http://127.0.0.1:9', maxAttempts: 2, connectTimeoutMs: 500 });
    try {
      await expect(b.get('x', 4096)).rejects.toMatchObject({ code: 'E_IO' });
    } finally {
      b.close();
    }
  });
});
