/**
 * store/core: The store itself: opening it, its SQLite schema and meta, its vocabulary of types, names and hashes.
 *
 * Other folders import this wing only through this file.
 *
 *   damage.ts          The damage mark: the first certain damage found, which refuses writes until check --repair.
 *   faults.ts          Fault injection for crash, disk-full and two-process tests.
 *   hash.ts            Block hashing.
 *   identity.ts        The store's own id:
 *   lru.ts             A bounded map that forgets the least recently used key.
 *   meta.ts            The meta table:
 *   names.ts           
 *   schema.ts          The SQLite schema, versioned by PRAGMA user_version.
 *   statements.ts      Prepared statements cached per connection.
 *   store.ts           The store:
 *   tx.ts              The doors to the store's SQLite index.
 *   types.ts           Vocabulary of the store.
 */
export { storeDamage, type StoreDamage } from './damage.js';
export * from './faults.js';
export * from './hash.js';
export * from './identity.js';
export * from './lru.js';
export * from './meta.js';
export * from './names.js';
export * from './schema.js';
export * from './statements.js';
export * from './store.js';
export type { Reader, WriteTx } from './tx.js';
export * from './types.js';
