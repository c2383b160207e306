/** Raw disk image files: import (holes skipped without reading) and sparse export. */
import fs from 'node:fs';
import { StrataError, badInput } from '../errors.js';
import type { Extent } from '../image/device.js';
import { openImage, type Image } from '../image/image.js';
import { openOutput, type Output } from './output.js';
import { dataExtents } from '../store/blocks/index.js';
import type { Store } from '../store/core/index.js';
import { BLOCK_SIZE, type OnProgress } from '../store/core/index.js';
import { extentWindows, type ImportSource } from './source.js';

export function openFileForRead(file: string): number {
  try {
    const fd = fs.openSync(file, 'r');
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw badInput(`${file} is not a regular file`, { file });
    }
    return fd;
  } catch (e) {
    if (e instanceof StrataError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StrataError('E_NOT_FOUND', `no such file: ${file}`, { file });
    throw new StrataError('E_IO', `cannot open ${file}: ${code}`, { file });
  }
}

/** A raw file as an import source. Its holes read as zeros, and hide a parent's data. */
export function openRawSource(file: string): ImportSource {
  const fd = openFileForRead(file);
  const size = fs.fstatSync(fd).size;
  const runs = dataExtents(fd, size);
  return {
    size,
    extents(offset, length) {
      const end = offset + length;
      const out: Extent[] = [];
      let pos = offset;
      for (const r of runs) {
        const s = Math.max(r.offset, offset);
        const e = Math.min(r.offset + r.length, end);
        if (e <= s) continue;
        if (s > pos) out.push({ offset: pos, length: s - pos, kind: 'zero' });
        out.push({ offset: s, length: e - s, kind: 'data' });
        pos = e;
      }
      if (pos < end) out.push({ offset: pos, length: end - pos, kind: 'zero' });
      return out;
    },
    read: (offset, length) => readAt(offset, length, Buffer.allocUnsafe(length)),
    readInto: (offset, length, into) => readAt(offset, length, into),
    close() {
      fs.closeSync(fd);
    },
  };
  function readAt(offset: number, length: number, into: Buffer): Buffer {
    const buf = into.length === length ? into : into.subarray(0, length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) {
        buf.fill(0, got);
        break;
      }
      got += n;
    }
    return buf;
  }
}

const CHUNK = 4 * 1024 * 1024;

/**
 * Copies a source into an open writable image. `onProgress` hears the bytes
 * of data copied of all the source holds: holes and zero runs cost nothing,
 * and counted as done they made a sparse file's rate, and so its ETA, a lie.
 */
export function copySourceInto(src: Pick<ImportSource, 'size' | 'extents' | 'read' | 'readInto'>, img: ReturnType<typeof openImage>, onProgress?: OnProgress): void {
  // One pass over the extents first (metadata only: SEEK_DATA, L2 tables) for the total.
  let total = 0;
  if (onProgress) for (const ext of extentWindows(src)) if (ext.kind === 'data') total += ext.length;
  let done = 0;
  // Read buffers are lent to the image (no copy) and come back once a flush has emptied it, so an
  // import holds its dirty limit plus one chunk, however long it runs: fresh buffers per chunk
  // left hundreds of MiB for the garbage collector to find.
  const idle: Buffer[] = [];
  const lent: Buffer[] = [];
  const readChunk = (off: number, n: number): Buffer => {
    if (!src.readInto) return src.read(off, n);
    const buf = idle.pop() ?? Buffer.allocUnsafe(CHUNK);
    lent.push(buf);
    return src.readInto(off, n, buf);
  };
  for (const ext of extentWindows(src)) {
    if (ext.kind === 'hole') continue;
    if (ext.kind === 'zero') {
      img.writeZeroes(ext.offset, ext.length);
      // No data done, but a chance to stop (Ctrl-C is checked in the callback).
      onProgress?.(done, total);
      continue;
    }
    for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
      const n = Math.min(CHUNK, ext.offset + ext.length - off);
      img.write(off, readChunk(off, n), true);
      if (img.dirtyBytes === 0) idle.push(...lent.splice(0));
      done += n;
      onProgress?.(done, total);
    }
  }
  // The bytes of the last, partial block past the end must be zero: a larger layer imported on
  // top, or a grow, shows them. A hole there (a qcow2 overlay smaller than its backing file)
  // inherits the parent's block whole, its bytes past this end included. Writing the block's
  // visible bytes back, up to the end, stores it with the rest zeroed; where the parent's
  // block already ends in zeros, that is the parent's slot and the entry stays INHERIT.
  const tail = src.size % BLOCK_SIZE;
  if (tail !== 0) {
    const start = src.size - tail;
    img.write(start, img.read(start, tail));
  }
}

/**
 * Writes an image as raw bytes to `out`. A regular file gets holes where
 * the image reads zeros; a device or a stream gets every byte, zeros
 * included. Like qemu-img convert, a file is left to the page cache unless
 * `sync` asks for an fsync first.
 */
export function writeRaw(
  img: Pick<Image, 'size' | 'extents' | 'readInto'>,
  out: Output,
  range: { offset: number; length: number } = { offset: 0, length: img.size },
  onProgress?: OnProgress,
): number {
  const dense = out.kind !== 'file';
  if (out.kind === 'file') fs.ftruncateSync(out.fd, range.length);
  let dataBytes = 0;
  const scratch = Buffer.allocUnsafe(CHUNK);
  const zeros = dense ? Buffer.alloc(CHUNK) : scratch;
  const end = range.offset + range.length;
  for (const ext of extentWindows({ size: end, extents: (o, l) => img.extents(o, l) }, undefined, range.offset)) {
    const isData = ext.kind === 'data';
    if (!isData && !dense) continue;
    for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
      const n = Math.min(CHUNK, ext.offset + ext.length - off);
      out.write(isData ? img.readInto(off, n, scratch) : zeros.subarray(0, n), off - range.offset);
      if (isData) dataBytes += n;
      onProgress?.(off + n - range.offset, range.length);
    }
  }
  return dataBytes;
}

/**
 * Exports an image to a raw file, device or stream (`-`: stdout). On any
 * error (or a throw from `onProgress`) a file's temporary copy is removed,
 * leaving what was there before.
 */
/**
 * Image `name` to read: `given` when it is that image, already open (a lazy
 * clone's blocks were fetched through it; its caller closes it), else a
 * handle opened here, closed by `close()`.
 */
export function imageToRead(store: Store, name: string, given?: Image): { img: Image; close(): void } {
  if (given !== undefined && given.name === name) return { img: given, close() {} };
  const img = openImage(store, name);
  return { img, close: () => img.close() };
}

export function exportRaw(store: Store, name: string, file: string, opts: { sync?: boolean; onProgress?: OnProgress; image?: Image } = {}): { size: number; dataBytes: number } {
  const { img, close } = imageToRead(store, name, opts.image);
  let out: Output | undefined;
  try {
    out = openOutput(file);
    if (out.kind === 'device' && out.capacity !== undefined && out.capacity < img.size) {
      throw new StrataError('E_NO_SPACE', `${file} holds ${out.capacity} bytes, less than image ${name} (${img.size} bytes)`, { file, capacity: out.capacity, size: img.size });
    }
    const dataBytes = writeRaw(img, out, undefined, opts.onProgress);
    out.commit({ sync: opts.sync });
    out = undefined;
    return { size: img.size, dataBytes };
  } finally {
    out?.abort();
    close();
  }
}
