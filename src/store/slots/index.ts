/**
 * store/slots: The slot table: refcounts, hashes and the dedup index, allocation and the free list, and placement, the one place that decides whether a block is new.
 *
 * Other folders import this wing only through this file.
 *
 *   allocator.ts       Slot allocation.
 *   freelist.ts        The free list:
 *   placement.ts       The one place that decides whether a block of data is new or already stored.
 *   refcounts.ts       Refcounts:
 *   slots.ts           The slot table:
 */
export * from './allocator.js';
export * from './freelist.js';
export * from './placement.js';
// Refcounts change only through a map edit (images/map-edit.ts), which applies them.
export type { Packing } from './refcounts.js';
export * from './slots.js';
