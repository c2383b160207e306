/**
 * The store's own id: random, made once, kept in meta. A bucket shared by
 * many hosts names this store by it (remote/upkeep/dependents.ts records which
 * stores hold lazy clones of which manifests), so it must outlive renames of
 * the directory and the host; a copied store directory shares it, as a
 * copied ZFS pool shares its guid.
 */
import { randomBytes } from 'node:crypto';
import { prepared } from './statements.js';
import { metaValue } from './meta.js';
import type { Store } from './store.js';
import { sqlOf } from './tx.js';

export function storeId(store: Store): string {
  const get = () => metaValue(store, 'store_id') as string | undefined;
  const have = get();
  if (have !== undefined) return have;
  // Made in a write transaction, first writer wins: two processes never hand out two ids.
  return store.write((tx) => {
    prepared(sqlOf(tx), "INSERT INTO meta(key, value) VALUES ('store_id', ?) ON CONFLICT(key) DO NOTHING").run(randomBytes(8).toString('hex'));
    return get()!;
  });
}
