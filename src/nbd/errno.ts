/**
 * Device failures become NBD error values here, and only here, so every
 * command reports the same condition the same way.
 */
import { isStrataError } from '../errors.js';
import { NBD_ERRNO, type NbdErrno } from './protocol.js';

export function errnoFor(e: unknown): NbdErrno {
  if (!isStrataError(e)) return NBD_ERRNO.EIO;
  switch (e.code) {
    case 'E_READONLY':
      return NBD_ERRNO.EPERM;
    case 'E_RANGE':
    case 'E_BAD_INPUT':
      return NBD_ERRNO.EINVAL;
    case 'E_NO_SPACE':
      return NBD_ERRNO.ENOSPC;
    default:
      return NBD_ERRNO.EIO;
  }
}

/** A short human-readable message for structured error chunks; never a stack. */
export function messageFor(e: unknown): string {
  if (isStrataError(e)) return `${e.code}: ${e.message}`;
  return 'internal error';
}
