/**
 * Prepared statements cached per connection. db.prepare() parses and plans
 * the SQL on every call (~20 µs); the catalog and map lookups run once per
 * image open, segment load and flush, so re-preparing them showed up as 10%
 * of a long random workload's time.
 */
import type Database from 'better-sqlite3';

const caches = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/** db.prepare(sql), kept for the connection's life. Do not change its mode (pluck/raw) after. */
export function prepared(db: Database.Database, sql: string): Database.Statement {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new Map()));
  let s = cache.get(sql);
  if (!s) cache.set(sql, (s = db.prepare(sql)));
  return s;
}
