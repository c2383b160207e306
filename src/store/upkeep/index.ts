/**
 * store/upkeep: Work on a whole store: check, gc, relocate (compress, repack), eviction of fetched blocks, and the reports they feed.
 *
 * Other folders import this wing only through this file.
 *
 *   check.ts           Consistency check of a whole store, in the manner of `qemu-img check`.
 *   damaged-reads.ts   Who reads a damaged slot:
 *   evict.ts           Dropping local copies of remote blocks:
 *   gc.ts              Garbage collection:
 *   relocate.ts        Moving blocks without touching maps:
 *   remote-usage.ts    What this store's images hold only in a remote's packs:
 */
export * from './check.js';
export * from './damaged-reads.js';
export * from './evict.js';
export * from './gc.js';
export * from './relocate.js';
export * from './remote-usage.js';
