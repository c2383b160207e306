/**
 * Room in the staging directory (the system temp directory, or the one an
 * import is given): an import stages every regular file of the layers it
 * builds there, then each layer's file system. --max-size bounds what a
 * layer may expand to (64 GiB by default), which says nothing of what the
 * temp directory holds: a few KiB of gzip of zeros would fill it before the
 * limit applied. So the free space is asked (statfs) as staging goes, and an
 * import that would leave less than a reserve free is refused with
 * E_NO_SPACE, before the file system is full for everyone else on it.
 */
import fs from 'node:fs';
import { StrataError } from '../../errors.js';
import { bytesText } from '../../units.js';

const MiB = 1 << 20;

/** What staging leaves free on its file system: other programs share it. */
export const STAGING_RESERVE = 64 * MiB;
/** Free space is asked again after this many bytes at the most: other writers may take it meanwhile. */
const RECHECK_EVERY = 64 * MiB;

/** Free bytes for an unprivileged writer in `dir`'s file system (statfs f_bavail × f_bsize). */
export type FreeBytes = (dir: string) => number;

export const statfsFree: FreeBytes = (dir) => {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
};

export class StagingSpace {
  /** Bytes that may still be written before free space is asked again. */
  private budget = 0;

  constructor(
    readonly dir: string,
    private readonly freeBytes: FreeBytes = statfsFree,
    private readonly reserve = STAGING_RESERVE,
  ) {}

  /** Accounts for `n` bytes about to be written to the staging directory; refuses them if they would leave less than the reserve free. */
  take(n: number, what: string): void {
    if (n <= this.budget) {
      this.budget -= n;
      return;
    }
    const free = this.freeBytes(this.dir);
    const left = free - n - this.reserve;
    if (left < 0) {
      throw new StrataError(
        'E_NO_SPACE',
        `${what}: staging it would leave less than ${bytesText(this.reserve)} free in ${this.dir} (${bytesText(free)} free); free some space or set TMPDIR to a larger file system; nothing imported`,
        { dir: this.dir, free, need: n, reserve: this.reserve },
      );
    }
    this.budget = Math.min(left, RECHECK_EVERY);
  }

  /**
   * Writes `chunk` to a staged file, after take(). A full file system met
   * anyway (another writer took the room meanwhile) is E_NO_SPACE about
   * the staging directory, not an error reading the image.
   */
  write(fd: number, chunk: Buffer, what: string): void {
    this.take(chunk.length, what);
    try {
      fs.writeSync(fd, chunk);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new StrataError('E_NO_SPACE', `${what}: no space left to stage it in ${this.dir}; free some space or set TMPDIR to a larger file system; nothing imported`, { dir: this.dir });
      }
      throw new StrataError('E_IO', `${what}: cannot stage it in ${this.dir}: ${code ?? (e as Error).message}`, { dir: this.dir });
    }
  }
}
