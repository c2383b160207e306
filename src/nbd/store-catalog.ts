/**
 * Exports of a strata store: images by name, leaves read-write and frozen
 * images read-only. Named exports are opened when the server starts, so a
 * leaf already served elsewhere is refused at once (E_BUSY) instead of at a
 * client's first connection, and each stays open, holding its writer lease,
 * for the server's whole life.
 */
import type { BlockDevice } from '../image/device.js';
import { openImage, type Image } from '../image/image.js';
import { listVisibleImages } from '../store/catalog.js';
import type { Store } from '../store/store.js';
import { isFrozen } from '../store/types.js';
import { notFound } from '../errors.js';
import type { ExportCatalog } from './exports.js';

const SERVE_DIRTY_LIMIT = 16 * 1024 * 1024;

export interface StoreCatalog extends ExportCatalog {
  /** Flushes and closes every image the catalog holds open. */
  closeAll(): void;
}

/** Keeps the image open when the NBD layer is done with it: the catalog owns its lifetime. */
function pinned(img: Image): BlockDevice {
  return new Proxy(img, {
    get(target, prop, receiver) {
      if (prop === 'close') return () => target.flush();
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export function storeCatalog(store: Store, names?: readonly string[]): StoreCatalog {
  const held = new Map<string, Image>();
  // A server holds many exports for a long time: a smaller write-back window (flushed
  // by itself when full) keeps its memory bounded, at the cost of more frequent syncs.
  const open = (name: string) => openImage(store, name, { writable: 'if-leaf', dirtyLimit: SERVE_DIRTY_LIMIT });
  if (names && names.length > 0) {
    try {
      for (const n of names) if (!held.has(n)) held.set(n, open(n));
    } catch (e) {
      for (const img of held.values()) img.close();
      throw e;
    }
  }
  return {
    list() {
      const visible = listVisibleImages(store.db);
      return visible
        .filter((i) => !names?.length || names.includes(i.name))
        .map((i) => ({ name: i.name, description: `${i.kind}${isFrozen(i) ? ' (read-only)' : ''}, ${i.virtualSize} bytes` }));
    },
    open(name) {
      const h = held.get(name);
      if (h) return pinned(h);
      if (names?.length) throw notFound(`image ${name} is not exported by this server`, { image: name });
      return open(name);
    },
    closeAll() {
      for (const img of held.values()) img.close();
      held.clear();
    },
  };
}
