/**
 * STORE/lock: the kernel's word on which leases are live.
 *
 * Each lease owns one byte of this file, at the offset of its id, and holds
 * an exclusive OFD lock on it for as long as it lives, through an open file
 * description of its own. The kernel drops the lock when the holder closes
 * the file or dies, whatever PID namespace or container the holder is in, so
 * "is byte N locked" answers "is lease N live" without comparing pids. The
 * file is never written, truncated or unlinked: locks live on its inode.
 *
 * Where the native addon (or the platform) has no OFD locks, `supported` is
 * false and callers fall back to the pid and start time kept in the lease row.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ofdLocks } from '../blocks/native.js';

export const LOCK_FILE = 'lock';

export interface LockFile {
  readonly supported: boolean;
  /** Locks byte `n` through a new open file description and returns it; null when another holds the byte. */
  hold(n: number): number | null;
  /** Whether any open file description (this process's own included) holds byte `n`. */
  held(n: number): boolean;
  /** Drops a lock taken by hold(). */
  release(fd: number): void;
  close(): void;
}

export function openLockFile(storeDir: string, readOnly: boolean): LockFile {
  const file = path.join(storeDir, LOCK_FILE);
  const locks = ofdLocks();
  let probe: number | null = null;
  if (locks) {
    try {
      probe = fs.openSync(file, readOnly ? 'r' : fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (e) {
      // A read-only store made by an older strata has no lock file: nobody can hold a lease there.
      if (!(readOnly && (e as NodeJS.ErrnoException).code === 'ENOENT')) throw e;
    }
  }
  const supported = locks !== null && probe !== null;
  return {
    supported,
    hold(n) {
      if (!supported) return null;
      const fd = fs.openSync(file, fs.constants.O_RDWR);
      if (locks!.lock(fd, n, 1, true)) return fd;
      fs.closeSync(fd);
      return null;
    },
    held(n) {
      // The probe holds no locks of its own, so it sees every holder, this process's included.
      return supported && locks!.locked(probe!, n, 1);
    },
    release(fd) {
      fs.closeSync(fd);
    },
    close() {
      if (probe !== null) fs.closeSync(probe);
      probe = null;
    },
  };
}
