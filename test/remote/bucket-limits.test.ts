/**
 * Bucket.get's size limit against an endpoint that does not say how large
 * an object is (chunked, no Content-Length) and sends far more than asked:
 * the real S3 client, a small HTTP server standing in for a misbehaving
 * S3 service. The read stops at the limit with E_CORRUPT and closes the
 * connection; the server never gets to send the rest.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { openBucket } from '../../src/remote/s3.js';

const MiB = 1024 * 1024;

describe('a whole-object read stops at its limit', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('a body with no length that runs past the limit is E_CORRUPT, and the rest is never sent', async () => {
    let closed!: () => void;
    const ended = new Promise<void>((resolve) => (closed = resolve));
    let finished: boolean | undefined;
    const server = http.createServer((_req, res) => {
      // 256 MiB in 64 KiB chunks, as fast as the client takes them, with no Content-Length.
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let sent = 0;
      const pump = () => {
        while (sent < 256 * MiB) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => {
        finished = res.writableFinished;
        closed();
      });
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    process.env.AWS_ACCESS_KEY_ID ??= 'key';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'secret';
    const bucket = openBucket({ bucket: 'b', endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    closers.push(async () => bucket.close());
    await expect(bucket.get('manifests/x/y.json', 4 * MiB)).rejects.toMatchObject({
      code: 'E_CORRUPT',
      message: `object manifests/x/y.json in s3://b at http://127.0.0.1:${port} is larger, over the 4 MiB, 4194304 bytes such an object can hold; refused`,
    });
    await ended;
    expect(finished).toBe(false);
  });
});
