/**
 * store/leases: Who has which image open: leases, the lock file the kernel keeps them in, and the slots open images may be reading.
 *
 * Other folders import this wing only through this file.
 *
 *   busy.ts            Which slots open images may be reading:
 *   leases.ts          Leases:
 *   lockfile.ts        STORE/lock:
 */
export * from './busy.js';
export * from './leases.js';
export * from './lockfile.js';
