/**
 * The meta table: the store's own counters and settings (next slot, free
 * epoch, remote block count, store id), one key each. Its own file so the
 * schema, the slot table and the store can all read it without importing
 * one another.
 */
import { prepared } from './statements.js';
import { sqlOf, type Reader, type WriteTx } from './tx.js';

/** A key's value as stored (a number or a string), or undefined when the store has no such key. */
export function metaValue(on: Reader, key: string): number | string | undefined {
  const row = prepared(sqlOf(on), 'SELECT value FROM meta WHERE key = ?').get(key) as { value: number | string } | undefined;
  return row?.value;
}

/** A counter: 0 when the key is absent. */
export function metaNumber(on: Reader, key: string): number {
  const v = metaValue(on, key);
  return v === undefined ? 0 : Number(v);
}

export function dropMeta(tx: WriteTx, key: string): void {
  prepared(sqlOf(tx), 'DELETE FROM meta WHERE key = ?').run(key);
}

export function setMeta(tx: WriteTx, key: string, value: number | string): void {
  prepared(sqlOf(tx), 'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}
