#!/usr/bin/env node
/**
 * The peer of the remote workload's push goal: what `aws s3 cp FILE
 * s3://BUCKET/KEY` does (the AWS CLI is not installed here), with
 * @aws-sdk/client-s3, the SDK strata itself uses:
 *
 *   node bench/lib/s3-cp.mjs FILE s3://BUCKET/KEY --endpoint URL [--part-size 8M] [--concurrency 4]
 *
 * A file of at least one part goes up as a multipart upload (the AWS CLI's
 * multipart_threshold and multipart_chunksize are both 8 MiB), its parts
 * read from the file as they are sent, `--concurrency` at once; a failed
 * upload is aborted. A smaller file is one PutObject. Path-style requests on
 * the endpoint (as strata's remotes on RGW), the keys and region from the
 * SDK's standard chain. Prints one JSON line: bytes, parts, ms (the upload
 * alone, from the first request to the last reply).
 *
 * Also exported for the workload: a client for the same endpoint, and
 * helpers to make a bucket and to delete a prefix (runs clean up after
 * themselves: the loopback RGW keeps its objects in RAM).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function s3Client(endpoint) {
  return new S3Client({ endpoint, forcePathStyle: true, region: process.env.AWS_REGION ?? 'us-east-1', maxAttempts: 5, retryMode: 'standard' });
}

export function parseUrl(url) {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new Error(`${url} is not s3://BUCKET/KEY`);
  return { bucket: m[1], key: m[2] };
}

export async function ensureBucket(client, Bucket) {
  try {
    await client.send(new HeadBucketCommand({ Bucket }));
  } catch {
    await client.send(new CreateBucketCommand({ Bucket }));
  }
}

/** Deletes every object under `prefix`; returns { objects, bytes } deleted. */
export async function deletePrefix(client, Bucket, Prefix) {
  let objects = 0;
  let bytes = 0;
  let ContinuationToken;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }));
    const keys = (r.Contents ?? []).map((o) => {
      bytes += o.Size ?? 0;
      return { Key: o.Key };
    });
    if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys, Quiet: true } }));
    objects += keys.length;
    ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return { objects, bytes };
}

/** Every object under `prefix` as [{ key, size }]. */
export async function listPrefix(client, Bucket, Prefix) {
  const out = [];
  let ContinuationToken;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }));
    for (const o of r.Contents ?? []) out.push({ key: o.Key, size: o.Size ?? 0 });
    ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return out;
}

/** Uploads `file` to Bucket/Key as `aws s3 cp` would. */
export async function copyFile(client, file, Bucket, Key, { partBytes = 8 * 2 ** 20, concurrency = 4 } = {}) {
  const size = fs.statSync(file).size;
  const fd = await fs.promises.open(file, 'r');
  const readPart = async (at, n) => {
    const buf = Buffer.allocUnsafe(n);
    for (let got = 0; got < n; ) {
      const { bytesRead } = await fd.read(buf, got, n - got, at + got);
      if (bytesRead <= 0) throw new Error(`${file} ended at ${at + got}, expected ${size} bytes`);
      got += bytesRead;
    }
    return buf;
  };
  try {
    if (size < partBytes) {
      await client.send(new PutObjectCommand({ Bucket, Key, Body: await readPart(0, size), ContentLength: size }));
      return { bytes: size, parts: 1 };
    }
    const count = Math.ceil(size / partBytes);
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    try {
      const parts = new Array(count);
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const at = i * partBytes;
          const Body = await readPart(at, Math.min(partBytes, size - at));
          const r = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body, ContentLength: Body.length }));
          parts[i] = { ETag: r.ETag, PartNumber: i + 1 };
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (e) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw e;
    }
    return { bytes: size, parts: count };
  } finally {
    await fd.close();
  }
}

function parseSize(s) {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}

async function main(argv) {
  const pos = [];
  const o = { partBytes: 8 * 2 ** 20, concurrency: 4, endpoint: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--endpoint') o.endpoint = argv[++i];
    else if (a === '--part-size') o.partBytes = parseSize(argv[++i]);
    else if (a === '--concurrency') o.concurrency = Number(argv[++i]);
    else pos.push(a);
  }
  if (pos.length !== 2 || !o.endpoint) {
    console.error('usage: node bench/lib/s3-cp.mjs FILE s3://BUCKET/KEY --endpoint URL [--part-size 8M] [--concurrency 4]');
    process.exit(2);
  }
  const { bucket, key } = parseUrl(pos[1]);
  const client = s3Client(o.endpoint);
  try {
    const t0 = performance.now();
    const r = await copyFile(client, pos[0], bucket, key, o);
    process.stdout.write(JSON.stringify({ ...r, ms: performance.now() - t0 }) + '\n');
  } finally {
    client.destroy();
  }
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`s3-cp: ${e.name ?? 'Error'}: ${e.message}`);
    process.exit(1);
  });
}
