/**
 * What an importer reads from: a virtual size, the allocation status of each
 * range, and the bytes. Raw files and qcow2 files both present this shape.
 * A 'hole' in a source over a parent means "keep the parent's content"; a
 * 'zero' hides it.
 */
import type { Extent } from '../image/device.js';

export interface ImportSource {
  readonly size: number;
  extents(offset: number, length: number): Extent[];
  /** A new buffer on every call: the importer keeps it without copying (Image.write's `owned`). */
  read(offset: number, length: number): Buffer;
  /** Like read, into `buf` (at least `length` bytes); returns the filled part. Lets an importer reuse its buffers. */
  readInto?(offset: number, length: number, buf: Buffer): Buffer;
  close(): void;
}

/** Works through [0, size) in windows, so extent lists stay bounded for huge sparse sources. */
export function* extentWindows(src: Pick<ImportSource, 'size' | 'extents'>, window = 1 << 30, from = 0): Generator<Extent> {
  for (let off = from; off < src.size; off += window) {
    yield* src.extents(off, Math.min(window, src.size - off));
  }
}
