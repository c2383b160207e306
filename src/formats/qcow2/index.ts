/**
 * QCOW2 interop: a read-only reader for import and a streaming writer for
 * export. Standalone: nothing here depends on the store. Modules:
 *   file.ts      the read-only image file (bounded, EOF-checked reads)
 *   header.ts    header + extensions: parse and validate (incl. table bounds, refcount_order)
 *   tables.ts    L1/L2 mapping and the bounded L2 cache
 *   snapshots.ts internal snapshot table
 *   compress.ts  deflate/zstd compressed clusters
 *   reader.ts    openQcow2, readQcow2Info, isQcow2File
 *   backing.ts   backingChain: the chain of backing files, and which ones strata follows
 *   writer.ts    writeQcow2
 */
export { isQcow2File, readQcow2Info, openQcow2 } from './reader.js';
export { backingChain } from './backing.js';
export type { BackingPolicy, ChainLink } from './backing.js';
export type { Qcow2Info, Qcow2Reader } from './reader.js';
export { writeQcow2 } from './writer.js';
export type { Qcow2Source, Qcow2WriteOptions, Qcow2WriteResult } from './writer.js';
