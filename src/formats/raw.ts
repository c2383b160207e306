/** Raw disk image files: import (holes skipped without reading) and sparse export. */
import fs from 'node:fs';
import { StrataError, badInput } from '../errors.js';
import type { Extent } from '../image/device.js';
import { openImage } from '../image/image.js';
import { dataExtents } from '../store/native.js';
import type { Store } from '../store/store.js';
import { BLOCK_SIZE, type OnProgress } from '../store/types.js';
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
    read(offset, length) {
      const buf = Buffer.allocUnsafe(length);
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
    },
    close() {
      fs.closeSync(fd);
    },
  };
}

const CHUNK = 4 * 1024 * 1024;

/** Copies a source into an open writable image; `onProgress` hears the source offset reached. */
export function copySourceInto(src: Pick<ImportSource, 'size' | 'extents' | 'read'>, img: ReturnType<typeof openImage>, onProgress?: (done: number) => void): void {
  for (const ext of extentWindows(src)) {
    if (ext.kind === 'hole') continue;
    if (ext.kind === 'zero') {
      img.writeZeroes(ext.offset, ext.length);
      onProgress?.(ext.offset + ext.length);
      continue;
    }
    for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
      const n = Math.min(CHUNK, ext.offset + ext.length - off);
      img.write(off, src.read(off, n));
      onProgress?.(off + n);
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
 * Writes an image to a raw file, leaving holes where it reads zeros. Like
 * qemu-img convert, the output is left to the page cache unless `sync` asks
 * for an fsync before returning. On any error (or a throw from `onProgress`)
 * a regular output file is removed: its old content is gone already, and a
 * partial image must not pass for a whole one.
 */
export function exportRaw(store: Store, name: string, file: string, opts: { sync?: boolean; onProgress?: OnProgress } = {}): { size: number; dataBytes: number } {
  const img = openImage(store, name);
  let fd: number | undefined;
  let failed = true;
  try {
    try {
      fd = fs.openSync(file, 'w', 0o644);
    } catch (e) {
      throw new StrataError('E_IO', `cannot create ${file}: ${(e as NodeJS.ErrnoException).code}`, { file });
    }
    fs.ftruncateSync(fd, img.size);
    let dataBytes = 0;
    const scratch = Buffer.allocUnsafe(CHUNK);
    for (const ext of extentWindows(img)) {
      if (ext.kind !== 'data') continue;
      for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
        const n = Math.min(CHUNK, ext.offset + ext.length - off);
        const buf = img.readInto(off, n, scratch);
        let put = 0;
        while (put < n) put += fs.writeSync(fd, buf, put, n - put, off + put);
        dataBytes += n;
        opts.onProgress?.(off + n, img.size);
      }
    }
    if (opts.sync) fs.fsyncSync(fd);
    failed = false;
    return { size: img.size, dataBytes };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC') throw new StrataError('E_NO_SPACE', `no space left to write ${file}`, { file });
    throw e;
  } finally {
    if (fd !== undefined) {
      // Never unlink a device or a pipe written to; only a regular file this export made or truncated.
      const regular = failed && fs.fstatSync(fd).isFile();
      fs.closeSync(fd);
      if (regular) fs.rmSync(file, { force: true });
    }
    img.close();
  }
}
