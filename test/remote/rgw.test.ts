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
