/**
 * store/core: The store itself: opening it, its SQLite schema and meta, its vocabulary of types, names and hashes.
 *
 * Other folders import this wing only through this file.
 *
 *   faults.ts          Fault injection for crash, disk-full and two-process tests.
 *   hash.ts            Block hashing.
 *   identity.ts        The store's own id:
 *   lru.ts             A bounded map that forgets the least recently used key.
 *   meta.ts            The meta table: the store's counters and settings (store-internal: other folders read them through named functions).
 *   names.ts           
 *   schema.ts          The SQLite schema, versioned by PRAGMA user_version.
 *   store.ts           The store:
 *   tx.ts              The doors to the store's SQLite index: Reader, WriteTx, one read transaction.
 *   types.ts           Vocabulary of the store.
 */
export * from './faults.js';
export * from './hash.js';
export * from './identity.js';
export * from './lru.js';
export * from './names.js';
export { SCHEMA_VERSION, schemaVersion } from './schema.js';
export * from './store.js';
export { readTx, dataVersion, type Reader, type WriteTx } from './tx.js';
export * from './types.js';
