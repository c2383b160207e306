/**
 * store/upkeep: Work on a whole store: check, gc, relocate (compress, repack), eviction of fetched blocks, and the reports they feed.
 *
 * Other folders import this wing only through this file.
 *
 *   check.ts           Consistency check of a whole store, in the manner of `qemu-img check`: runs the passes in check/.
 *   check/faults.ts       What check finds: a fault, its class, and the sink every pass reports into.
 *   check/context.ts      The one value every check pass shares: store, repair or not, next_slot, faults, repairs.
 *   check/catalog.ts      Pass: every parent exists, no parent chain loops.
 *   check/free-list.ts    Passes: the free list holds nothing past next_slot; every slot is in use or free.
 *   check/maps.ts         Pass: references per slot from the maps; entries past the end or at free slots; own_blocks.
 *   check/slots.ts        Pass: each live slot's refcount against its references, and its location.
 *   check/containers.ts   Pass: packed blocks lie in live containers; container refcounts; packed counts.
 *   check/repair.ts       Pass: writes the gathered repairs; checks the count of slots in use.
 *   check/verify.ts       Pass: reads every slot in use and compares its hash.
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
