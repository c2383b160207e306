/**
 * file.ts: the read-only image file a format reader works through.
 *
 * Every read names what it is reading, so a short file turns into a one-line
 * E_BAD_FILE naming the structure that runs past the end, never a short buffer.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StrataError, inputError, notFound } from '../../errors.js';

export const hex = (n: number | bigint): string => '0x' + n.toString(16);

export class ImageFile {
  readonly path: string;
  readonly size: number;
  private fd: number;

  constructor(path: string) {
    this.path = path;
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw openError(path, e);
    }
    try {
      const st = fstatSync(this.fd);
      if (!st.isFile()) throw new StrataError('E_BAD_INPUT', `${path}: not a regular file`);
      this.size = st.size;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  /** Reads exactly `length` bytes at `offset`; E_BAD_FILE naming `what` if that runs past EOF. */
  readAt(offset: number, length: number, what: string): Buffer {
    this.checkRange(offset, length, what);
    const buf = Buffer.allocUnsafe(length);
    this.readInto(buf, 0, length, offset, what);
    return buf;
  }

  checkRange(offset: number, length: number, what: string): void {
    if (!(offset >= 0) || !(length >= 0) || offset + length > this.size) {
      throw inputError(`${this.path}: ${what} at offset ${hex(offset)} (${length} bytes) runs past end of file (${this.size} bytes)`, {
        offset,
        length,
        fileSize: this.size,
      });
    }
  }

  readInto(buf: Buffer, bufOffset: number, length: number, position: number, what: string): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, bufOffset + done, length - done, position + done);
      if (n <= 0) throw inputError(`${this.path}: ${what} at offset ${hex(position)}: file ended early`);
      done += n;
    }
  }

  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}

export function openError(path: string, e: unknown): StrataError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return notFound(`${path}: no such file`, { path });
  if (code === 'EISDIR') return new StrataError('E_BAD_INPUT', `${path}: is a directory`, { path });
  return new StrataError('E_IO', `${path}: cannot open: ${(e as Error)?.message ?? String(e)}`, { path }, { cause: e });
}
