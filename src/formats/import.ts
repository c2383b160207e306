/**
 * Importing any source as a new image. The image is built under a hidden
 * name and takes its real name in the final transaction, so after a crash the
 * store holds either no image or the whole one; a half-built hidden image is
 * dropped by the next recovery (see recoverAbandoned).
 */
import { badInput } from '../errors.js';
import { assertNameFree, chainOf, getImage, insertImage, listImagesWithPrefix, updateImage } from '../store/catalog.js';
import { imageName } from '../store/names.js';
import type { Store } from '../store/store.js';
import { isFrozen, type ImageName, type ImageRecord, type OnProgress } from '../store/types.js';
import { checkVirtualSize, dropImageInTx, frozenKind } from '../image/lifecycle.js';
import { leaseTx, liveLeases } from '../store/leases.js';
import { Image } from '../image/image.js';
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
  /** Bytes of the source done; may throw to stop, and the hidden image is dropped. */
  onProgress?: OnProgress;
  /** Flush by itself every this many bytes of data (default: the image default, 64 MiB). */
  dirtyLimit?: number;
}

export function importSource(store: Store, src: ImportSource, name: string, opts: ImportOptions = {}): ImageRecord {
  const final = imageName(name);
  checkVirtualSize(src.size);
  const tmp = `${HIDDEN_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}` as ImageName;
  // The hidden row and its writer lease commit together, and the lease is held until the rename
  // has committed: at no moment can another process's recovery take the import for abandoned.
  const made = leaseTx(
    store,
    (take) => {
      assertNameFree(store.db, final);
      const parent = opts.parent === undefined ? null : getImage(store.db, opts.parent);
      if (parent && !isFrozen(parent)) {
        throw badInput(`cannot import onto ${parent.name}: it is a writable leaf, whose changes would show through the new layer; snapshot or freeze it first`, {
          parent: parent.name,
        });
      }
      const rec = insertImage(store.db, { name: tmp, kind: 'leaf', parentId: parent?.id ?? null, virtualSize: src.size, labels: opts.labels, source: opts.source ?? null });
      return { rec, chain: chainOf(store.db, rec), lease: take(store, rec.id, rec.name, 'write') };
    },
    { durable: true },
  );
  faultPoint('import.after-create');
  const img = new Image(store, made.rec, made.chain, { writable: true, dirtyLimit: opts.dirtyLimit, lease: made.lease });
  const abandon = () => {
    try {
      img.close({ discard: true });
    } catch {
      // The import failed already; its error is the one worth reporting.
    }
    store.write(() => dropImageInTx(store, getImage(store.db, tmp)));
  };
  try {
    copySourceInto(src, img, (done) => opts.onProgress?.(done, src.size));
    faultPoint('import.before-flush');
    // Inside the try: a final flush that fails (E_NO_SPACE) drops the hidden image too.
    img.flush();
    faultPoint('import.after-flush');
  } catch (e) {
    abandon();
    throw e;
  }
  let done: ImageRecord;
  try {
    done = store.write(() => {
      assertNameFree(store.db, final);
      updateImage(store.db, made.rec.id, { name: final, kind: opts.writable ? 'leaf' : frozenKind(made.rec.parentId) });
      faultPoint('import.before-rename-commit');
      return getImage(store.db, final);
    });
  } catch (e) {
    abandon();
    throw e;
  }
  faultPoint('import.after-rename-commit');
  img.close();
  return done;
}

/** Drops hidden images left by imports whose process died. Returns how many. */
export function recoverAbandoned(store: Store): number {
  // The look outside the transaction only saves the write lock when there is nothing to do: the
  // list that counts is the one inside it. An import listed a moment ago may have finished and
  // taken its real name since, and must not be dropped under it.
  if (listImagesWithPrefix(store.db, HIDDEN_PREFIX).length === 0) return 0;
  return store.write(() => {
    let n = 0;
    for (const img of listImagesWithPrefix(store.db, HIDDEN_PREFIX)) {
      if (liveLeases(store, [img.id]).length > 0) continue;
      dropImageInTx(store, img);
      n++;
    }
    return n;
  });
}
