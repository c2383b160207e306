/**
 * store/blocks: Where block bytes live and how they are read: data files, locations (own slot, packed fragment, remote), codecs, verification, the native addon.
 *
 * Other folders import this wing only through this file.
 *
 *   codecs.ts          Block codecs:
 *   datafiles.ts       Block slots on local disk:
 *   faulty-blocks.ts   FaultyBlocks: a BlockBackend that fails, tears, drops or holds writes and syncs where a plan (or STRATA_FAULT) says.
 *   fragment-run.ts    A run of new container slots filled with fragments one after another:
 *   location.ts        A block's location (own, packed, container, remote): the type, and the only code that knows its words in slot_locs.
 *   locations.ts       Where blocks live, and reading them from there.
 *   moved-places.ts    Old places of moved blocks:
 *   native.ts          The optional native addon (native/strata_native.c) and its portable fallbacks.
 *   remote-locs.ts     Blocks that live in a remote pack until first read (lazy clones, remote/store-side/lazy.ts):
 *   verify.ts          Every block read is checked against the hash recorded for its slot (slot_hashes, slots.ts), as
 *                       ZFS checks each read against its checksum:
 *   zstd-frame.ts      The shape of a zstd fragment, read before fzstd decodes it (RFC 8878, section 3.1.1).
 */
export * from './codecs.js';
export * from './datafiles.js';
export * from './faulty-blocks.js';
export * from './fragment-run.js';
export * from './location.js';
export * from './locations.js';
export * from './moved-places.js';
export * from './native.js';
export * from './remote-locs.js';
export * from './verify.js';
export * from './zstd-frame.js';
