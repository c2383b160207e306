/**
 * A bucket, as the rest of src/remote/ sees it: put, get, ranged get, head,
 * list, over @aws-sdk/client-s3. The only module that talks S3.
 *
 * - Endpoint and addressing are explicit (Ceph RGW and MinIO want path-style
 *   requests on a plain endpoint); credentials and region come from the
 *   SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 *   AWS_PROFILE and ~/.aws, instance roles), region defaulting to us-east-1,
 *   which RGW accepts whatever its zonegroup is called.
 * - Retries: the SDK's standard mode (exponential backoff with jitter,
 *   throttling and 5xx and connection errors), `maxAttempts` tries in all.
 * - Timeouts: a connection must open in `connectTimeoutMs`; a request that
 *   sends or receives nothing for `requestTimeoutMs` fails (and is retried).
 * - Objects larger than `multipartBytes` go up as a multipart upload, parts
 *   of `partBytes` a few at a time; a failed one is aborted so no parts are
 *   left to pay for.
 * - A whole-object read names the most it will take (the bucket is written
 *   by others): an object the response says is larger is refused unread,
 *   and a body that runs past it anyway is cut off there. Either is
 *   E_CORRUPT naming the object.
 * - Errors become StrataErrors: a missing object or bucket is E_NOT_FOUND;
 *   a range past an object's end is E_RANGE; anything else (refused, timed
 *   out, denied, a 5xx after the retries) is E_IO naming the bucket, the key and the S3 error code.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { StrataError, bucketCorrupt } from '../errors.js';
import { bytesText } from '../units.js';

// strata supports node 20; the SDK's notice that its releases after January 2027 will not is for
// whoever upgrades the SDK (package.json pins it), not for every user of every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface BucketOptions {
  bucket: string;
  /** http(s)://host:port of an S3-compatible service; absent: AWS S3 itself. */
  endpoint?: string;
  /** Path-style requests (http://host/bucket/key); default true with an endpoint, false without. */
  pathStyle?: boolean;
  region?: string;
  maxAttempts?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Objects at least this large go up in parts (default 16 MiB). */
  multipartBytes?: number;
  /** Part size of a multipart upload (default 8 MiB; S3's least is 5 MiB). */
  partBytes?: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date | undefined;
}

export interface Bucket {
  readonly name: string;
  /** Where requests go, for messages. */
  readonly where: string;
  /** Creates the bucket unless it exists (ours or, on RGW, already owned by these credentials). */
  ensure(): Promise<void>;
  /** Throws E_NOT_FOUND when the bucket does not exist, E_IO when it cannot be reached. */
  check(): Promise<void>;
  put(key: string, body: Uint8Array): Promise<void>;
  /** Puts only if no object has this key (a conditional write: If-None-Match: *). False when one has. */
  putNew(key: string, body: Uint8Array): Promise<boolean>;
  /** Deletes an object; one that is already gone is no error. */
  remove(key: string): Promise<void>;
  /** The whole object; E_CORRUPT, and at most maxBytes read, when it is larger than maxBytes. */
  get(key: string, maxBytes: number): Promise<Buffer>;
  /** Bytes [start, end) of an object; E_RANGE when they are not all in it. */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** Whether an object exists. */
  has(key: string): Promise<boolean>;
  /** Every object under `prefix`, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  close(): void;
}

/** An object larger than what it names can be (`size` as listed or sent; undefined: it kept sending past the limit). */
export const objectTooLarge = (where: string, key: string, limit: number, size?: number): StrataError =>
  bucketCorrupt(`object ${key} in ${where} is ${size === undefined ? 'larger' : bytesText(size)}, over the ${bytesText(limit)} such an object can hold; refused`, { key, size, limit });

const isNotFound = (e: unknown): boolean => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.name === 'NoSuchBucket' || err.$metadata?.httpStatusCode === 404;
};

export function openBucket(opts: BucketOptions): Bucket {
  const client = new S3Client({
    endpoint: opts.endpoint,
    forcePathStyle: opts.pathStyle ?? opts.endpoint !== undefined,
    region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    maxAttempts: opts.maxAttempts ?? 5,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: opts.connectTimeoutMs ?? 5_000,
      requestTimeout: opts.requestTimeoutMs ?? 60_000,
      throwOnRequestTimeout: true,
    },
  });
  const Bucket = opts.bucket;
  const where = `s3://${Bucket}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
  const multipartBytes = opts.multipartBytes ?? 16 * 1024 * 1024;
  const partBytes = Math.max(5 * 1024 * 1024, opts.partBytes ?? 8 * 1024 * 1024);

  const fail = (e: unknown, what: string, key?: string): StrataError => {
    if (e instanceof StrataError) return e;
    const err = e as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const data = { bucket: Bucket, key, endpoint: opts.endpoint, s3Error: err.name, status };
    const obj = key === undefined ? where : `${key} in ${where}`;
    if (isNotFound(e)) {
      if (err.name === 'NoSuchBucket') return new StrataError('E_NOT_FOUND', `no bucket ${Bucket} at ${opts.endpoint ?? 'AWS S3'}`, data, { cause: e });
      return new StrataError('E_NOT_FOUND', `no object ${obj}`, data, { cause: e });
    }
    const why = [err.name, status && `HTTP ${status}`, err.code, err.message].filter((x) => x && x !== 'Error' && x !== 'UnknownError').join(': ');
    return new StrataError('E_IO', `cannot ${what} ${obj}: ${why || 'unknown error'}`, data, { cause: e });
  };

  const putParts = async (Key: string, body: Uint8Array): Promise<void> => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    try {
      const parts: { ETag: string | undefined; PartNumber: number }[] = [];
      const count = Math.ceil(body.length / partBytes);
      let next = 0;
      // Four parts in flight: enough to fill a link to a nearby RGW without holding many buffers.
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const Body = body.subarray(i * partBytes, Math.min(body.length, (i + 1) * partBytes));
          const r = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body }));
          parts[i] = { ETag: r.ETag, PartNumber: i + 1 };
        }
      };
      await Promise.all(Array.from({ length: Math.min(4, count) }, worker));
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (e) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw e;
    }
  };

  const body = async (r: { Body?: { transformToByteArray(): Promise<Uint8Array> } }): Promise<Buffer> => {
    const b = await r.Body!.transformToByteArray();
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };

  return {
    name: Bucket,
    where,
    async ensure() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
        return;
      } catch (e) {
        if (!isNotFound(e)) throw fail(e, 'reach');
      }
      try {
        await client.send(new CreateBucketCommand({ Bucket }));
      } catch (e) {
        const name = (e as { name?: string }).name;
        // Made meanwhile by another host (or by us, on RGW): as good as made here.
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw fail(e, 'create');
      }
    },
    async check() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (e) {
        if (isNotFound(e)) throw new StrataError('E_NOT_FOUND', `no bucket ${Bucket} at ${opts.endpoint ?? 'AWS S3'} (NoSuchBucket)`, { bucket: Bucket, endpoint: opts.endpoint, s3Error: 'NoSuchBucket' });
        throw fail(e, 'reach');
      }
    },
    async put(Key, data) {
      try {
        if (data.length >= multipartBytes) await putParts(Key, data);
        else await client.send(new PutObjectCommand({ Bucket, Key, Body: data, ContentLength: data.length }));
      } catch (e) {
        throw fail(e, 'upload', Key);
      }
    },
    async putNew(Key, data) {
      try {
        await client.send(new PutObjectCommand({ Bucket, Key, Body: data, ContentLength: data.length, IfNoneMatch: '*' }));
        return true;
      } catch (e) {
        const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412) return false;
        throw fail(e, 'create', Key);
      }
    },
    async remove(Key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key }));
      } catch (e) {
        if (!isNotFound(e)) throw fail(e, 'delete', Key);
      }
    },
    async get(Key, maxBytes) {
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new StrataError('E_INTERNAL', `a read of ${Key} without a size limit`);
      try {
        const r = await client.send(new GetObjectCommand({ Bucket, Key }));
        const stream = r.Body as Readable | undefined;
        if (!stream) return Buffer.alloc(0);
        if (r.ContentLength !== undefined && r.ContentLength > maxBytes) {
          stream.destroy();
          throw objectTooLarge(where, Key, maxBytes, r.ContentLength);
        }
        // The length header is the sender's word: count what arrives too, and stop at the limit.
        const chunks: Buffer[] = [];
        let got = 0;
        for await (const chunk of stream) {
          got += (chunk as Buffer).length;
          if (got > maxBytes) {
            stream.destroy();
            throw objectTooLarge(where, Key, maxBytes);
          }
          chunks.push(chunk as Buffer);
        }
        return Buffer.concat(chunks, got);
      } catch (e) {
        throw fail(e, 'download', Key);
      }
    },
    async getRange(Key, start, end) {
      if (end <= start) return Buffer.alloc(0);
      // Bytes past the object's end are no I/O failure: whoever named that range was wrong about the object.
      const past = (got: number) => new StrataError('E_RANGE', `${Key} in ${where}: asked for ${end - start} bytes at ${start}, got ${got}`, { bucket: Bucket, key: Key });
      try {
        const b = await body(await client.send(new GetObjectCommand({ Bucket, Key, Range: `bytes=${start}-${end - 1}` })));
        if (b.length !== end - start) throw past(b.length);
        return b;
      } catch (e) {
        if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) throw past(0);
        throw fail(e, 'download', Key);
      }
    },
    async has(Key) {
      try {
        await client.send(new HeadObjectCommand({ Bucket, Key }));
        return true;
      } catch (e) {
        if (isNotFound(e)) return false;
        throw fail(e, 'look up', Key);
      }
    },
    async list(Prefix) {
      const out: ObjectInfo[] = [];
      let ContinuationToken: string | undefined;
      try {
        do {
          const r = await client.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }));
          for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key, size: o.Size ?? 0, modified: o.LastModified });
          ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
        } while (ContinuationToken);
      } catch (e) {
        throw fail(e, 'list', Prefix);
      }
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },
    close() {
      client.destroy();
    },
  };
}
