/**
 * A Buffer-backed BlockDevice for tests. It keeps strata's semantics where
 * the NBD server can observe them: each 4 KiB block is a hole until written,
 * data once written, and zero after writeZeroes/discard covers it whole
 * (a discarded range reads zeros, never old data).
 */
import { StrataError } from '../../src/errors.js';
import type { BlockDevice, Extent, ExtentKind } from '../../src/image/device.js';

export const BLOCK = 4096;
// Block kinds index KINDS; 0, a hole, is what a fresh device's zero-filled array says.
const DATA = 1;
const ZERO = 2;
const KINDS: ExtentKind[] = ['hole', 'data', 'zero'];

export class MemoryDevice implements BlockDevice {
  readonly bytes: Buffer;
  readonly blocks: Uint8Array;
  flushes = 0;
  closed = false;
  readonly calls: { op: string; offset: number; length: number }[] = [];
  /** Set to make the next device call throw it (fault injection). */
  failNext: Error | null = null;

  constructor(readonly size: number, readonly readOnly = false) {
    this.bytes = Buffer.alloc(size);
    this.blocks = new Uint8Array(Math.ceil(size / BLOCK));
  }

  read(offset: number, length: number): Buffer {
    this.check('read', offset, length, false);
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }

  write(offset: number, data: Uint8Array): void {
    this.check('write', offset, data.length, true);
    this.bytes.set(data, offset);
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + data.length; b++) this.blocks[b] = DATA;
  }

  writeZeroes(offset: number, length: number): void {
    this.check('writeZeroes', offset, length, true);
    this.zero(offset, length);
  }

  discard(offset: number, length: number): void {
    this.check('discard', offset, length, true);
    this.zero(offset, length);
  }

  flush(): void {
    this.check('flush', 0, 0, false);
    this.flushes++;
  }

  extents(offset: number, length: number): Extent[] {
    this.check('extents', offset, length, false);
    const out: Extent[] = [];
    const end = offset + length;
    for (let at = offset; at < end; ) {
      const b = Math.floor(at / BLOCK);
      const next = Math.min((b + 1) * BLOCK, end);
      const kind = KINDS[this.blocks[b]];
      const last = out[out.length - 1];
      if (last && last.kind === kind) last.length += next - at;
      else out.push(kind === 'hole' ? { offset: at, length: next - at, kind } : { offset: at, length: next - at, kind, depth: 0 });
      at = next;
    }
    return out;
  }

  close(): void {
    this.closed = true;
  }

  /** Expected NBD view for a range: runs of kind, like extents() but for the whole device. */
  kindAt(offset: number): ExtentKind {
    return KINDS[this.blocks[Math.floor(offset / BLOCK)]];
  }

  private zero(offset: number, length: number): void {
    this.bytes.fill(0, offset, offset + length);
    const end = offset + length;
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < end; b++) {
      const s = b * BLOCK;
      const e = Math.min(s + BLOCK, this.size);
      // Only a fully covered block becomes ZERO; a partly zeroed block keeps
      // its state (a hole still reads zero, data is still data).
      if (s >= offset && e <= end) this.blocks[b] = ZERO;
    }
  }

  private check(op: string, offset: number, length: number, writes: boolean): void {
    this.calls.push({ op, offset, length });
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    if (this.closed) throw new StrataError('E_INTERNAL', 'device is closed');
    if (writes && this.readOnly) throw new StrataError('E_READONLY', 'device is read-only');
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new StrataError('E_RANGE', `${op} [${offset}, +${length}) past end ${this.size}`);
    }
  }
}
