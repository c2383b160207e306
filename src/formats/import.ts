/**
 * Importing any source as a new image. The image is built under a hidden
 * name and takes its real name in the final transaction, so after a crash the
 * store holds either no image or the whole one; a half-built hidden image is
 * dropped by the next recovery (see recoverAbandoned).
 */
import { assertNameFree, getImage, insertImage, listImagesWithPrefix, updateImage } from '../store/catalog.js';
import { imageName } from '../store/names.js';
import type { Store } from '../store/store.js';
import type { ImageName, ImageRecord } from '../store/types.js';
import { checkVirtualSize, dropImageInTx, frozenKind } from '../image/lifecycle.js';
import { liveLeases } from '../store/leases.js';
import { openImage } from '../image/image.js';
import { copySourceInto } from './raw.js';
import type { ImportSource } from './source.js';
import { faultPoint } from '../store/faults.js';

export const HIDDEN_PREFIX = '.import-';

export interface ImportOptions {
  parent?: string;
  /** Keep the result writable (a leaf); default is frozen (base, or layer over a parent). */
  writable?: boolean;
  source?: Record<string, unknown>;
  labels?: Record<string, string>;
  onProgress?: (done: number, total: number) => void;
  /** Flush by itself every this many bytes of data (default: the image default, 64 MiB). */
  dirtyLimit?: number;
}

export function importSource(store: Store, src: ImportSource, name: string, opts: ImportOptions = {}): ImageRecord {
  const final = imageName(name);
  checkVirtualSize(src.size);
  const tmp = `${HIDDEN_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}` as ImageName;
  const rec = store.write(() => {
    assertNameFree(store.db, final);
    const parent = opts.parent === undefined ? null : getImage(store.db, opts.parent);
    return insertImage(store.db, { name: tmp, kind: 'leaf', parentId: parent?.id ?? null, virtualSize: src.size, labels: opts.labels, source: opts.source ?? null });
  });
  faultPoint('import.after-create');
  const img = openImage(store, tmp, { writable: true, dirtyLimit: opts.dirtyLimit });
  try {
    copySourceInto(src, img, (done) => opts.onProgress?.(done, src.size));
    faultPoint('import.before-flush');
    // Inside the try: a final flush that fails (E_NO_SPACE) drops the hidden image too.
    img.close();
    faultPoint('import.after-flush');
  } catch (e) {
    try {
      img.close({ discard: true });
    } catch {
      // The import failed already; its error is the one worth reporting.
    }
    store.write(() => dropImageInTx(store, getImage(store.db, tmp)));
    throw e;
  }
  const done = store.write(() => {
    assertNameFree(store.db, final);
    updateImage(store.db, rec.id, { name: final, kind: opts.writable ? 'leaf' : frozenKind(rec.parentId) });
    faultPoint('import.before-rename-commit');
    return getImage(store.db, final);
  });
  faultPoint('import.after-rename-commit');
  return done;
}

/** Drops hidden images left by imports whose process died. Returns how many. */
export function recoverAbandoned(store: Store): number {
  const hidden = listImagesWithPrefix(store.db, HIDDEN_PREFIX);
  if (hidden.length === 0) return 0;
  return store.write(() => {
    let n = 0;
    for (const img of hidden) {
      if (liveLeases(store.db, [img.id]).length > 0) continue;
      dropImageInTx(store, img);
      n++;
    }
    return n;
  });
}
