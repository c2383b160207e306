/**
 * Reading one layer blob: its digest and size checked against the manifest
 * first (a blob that does not match is refused before a byte of it is
 * interpreted), then decompressed (gzip, zstd or none, told by its magic),
 * hashed again against the config's diffID, bounded by --max-size, and parsed
 * as tar into a sink.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress as ZstdStream } from 'fzstd';
import { StrataError, inputError } from '../../errors.js';
import type { Digest } from './digest.js';
import { TarParser, type TarSink } from './tar.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Checks a blob's size and sha256 by reading it once. */
export async function verifyBlob(stream: Readable, expect: { digest: Digest; size?: number }, what: string): Promise<void> {
  const h = crypto.createHash('sha256');
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    h.update(chunk);
    n += chunk.length;
  }
  const got = `sha256:${h.digest('hex')}`;
  if (expect.size !== undefined && n !== expect.size) {
    throw inputError(`${what} is ${n} bytes, but the manifest says ${expect.size}; nothing imported`, { digest: expect.digest, bytes: n, expected: expect.size });
  }
  if (got !== expect.digest) throw inputError(`${what} has digest ${got}, not ${expect.digest} as the manifest says; nothing imported`, { digest: expect.digest, actual: got });
}

function compressionOf(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** Decompressed chunks of `src`, whatever its compression. */
async function* decompressed(src: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const kind = compressionOf(first.value);
  const rest = (async function* () {
    yield first.value;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  })();
  if (kind === 'none') {
    yield* rest;
    return;
  }
  if (kind === 'gzip') {
    const input = Readable.from(rest);
    const gunzip = zlib.createGunzip();
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    try {
      for await (const c of gunzip as AsyncIterable<Buffer>) yield c;
    } catch (e) {
      if (e instanceof StrataError) throw e;
      throw inputError(`${what} is not a valid gzip stream (${(e as Error).message})`);
    } finally {
      // Stopped early (a refusal): nothing may wait on the other side, or the process would hang.
      input.destroy();
      gunzip.destroy();
    }
    return;
  }
  const out: Buffer[] = [];
  const z = new ZstdStream((chunk) => out.push(Buffer.from(chunk)));
  try {
    for await (const c of rest) {
      z.push(c);
      yield* out.splice(0);
    }
    z.push(new Uint8Array(0), true);
  } catch (e) {
    if (e instanceof StrataError) throw e;
    throw inputError(`${what} is not a valid zstd stream (${(e as Error).message})`);
  }
  yield* out.splice(0);
}

export interface LayerReadOptions {
  diffId: Digest;
  /** Uncompressed bytes this layer may still take before the import is refused (--max-size). */
  maxBytes: number;
  maxSizeText: string;
  what: string;
}

/** Decompresses and parses a layer into `sink`; returns its uncompressed size. */
export async function readLayer(stream: Readable, sink: TarSink, o: LayerReadOptions): Promise<number> {
  const h = crypto.createHash('sha256');
  const parser = new TarParser(sink);
  let n = 0;
  for await (const chunk of decompressed(stream as AsyncIterable<Buffer>, o.what)) {
    n += chunk.length;
    if (n > o.maxBytes) {
      stream.destroy();
      throw new StrataError('E_RANGE', `${o.what} expands beyond --max-size ${o.maxSizeText} (a tar bomb, or pass a larger --max-size); nothing imported`, { maxBytes: o.maxBytes });
    }
    h.update(chunk);
    parser.push(chunk);
  }
  const got = `sha256:${h.digest('hex')}`;
  if (got !== o.diffId) throw inputError(`${o.what} uncompresses to ${got}, not the diffID ${o.diffId} its config names; nothing imported`, { diffId: o.diffId, actual: got });
  parser.end();
  return n;
}

