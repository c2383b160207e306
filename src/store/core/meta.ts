/**
 * The meta table: the store's own counters and settings (next slot, free
 * epoch, remote block count, store id), one key each. Its own file so the
 * schema, the slot table and the store can all read it without importing
 * one another.
 */
import { prepared } from './statements.js';
import { sqlOf, type Reader, type WriteTx } from './tx.js';

export function metaNumber(on: Reader, key: string): number {
  const row = prepared(sqlOf(on), 'SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined;
  return row ? Number(row.value) : 0;
}

export function setMeta(tx: WriteTx, key: string, value: number | string): void {
  prepared(sqlOf(tx), 'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}
