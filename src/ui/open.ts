/**
 * The page's store: opened read-only (SQLite `readonly`, data files 'r'), so
 * the page can never change it. A read-only open does not migrate, so a store
 * of another schema version is refused here rather than misread later.
 */
import { StrataError } from '../errors.js';
import { SCHEMA_VERSION, openStore, schemaVersion, type Store } from '../store/core/index.js';

export async function openStoreForPage(dir: string): Promise<Store> {
  const store = await openStore(dir, { create: false, readOnly: true });
  const version = schemaVersion(store);
  if (version !== SCHEMA_VERSION) {
    store.close();
    throw new StrataError(
      'E_UNSUPPORTED',
      version > SCHEMA_VERSION
        ? `store schema version ${version} is newer than this strata (${SCHEMA_VERSION}); upgrade strata`
        : `store ${store.dir} has schema version ${version}, older than this strata's ${SCHEMA_VERSION}, and the page only reads: run strata info once to upgrade it`,
      { store: store.dir },
    );
  }
  return store;
}
