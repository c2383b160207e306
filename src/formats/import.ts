/**
 * Importing any source as a new image. The image is built under a hidden
 * name and takes its real name in the final transaction, so after a crash the
 * store holds either no image or the whole one; a half-built hidden image is
 * dropped by the next recovery (see recoverAbandoned).
 */
import { resolveImage } from '../image/refs.js';
import { requireCompressor, storeCompression, type CodecSpec } from '../store/blocks/index.js';
import fs from 'node:fs';
import path from 'node:path';
import { StrataError, badInput } from '../errors.js';
import { assertNameFree, chainOf, getImage, insertImage, listImagesWithPrefix, updateImage } from '../store/images/index.js';
import { imageName, storedName, BLOCK_SIZE, MAX_VIRTUAL_SIZE, isFrozen, type ImageName, type ImageRecord, type OnProgress, faultPoint, storeDamage } from '../store/core/index.js';
import type { Reader, Store, WriteTx } from '../store/core/index.js';
import { checkVirtualSize, dropImageInTx, frozenKind } from '../image/lifecycle.js';
import { leaseTx, liveLeases } from '../store/leases/index.js';
import { Image } from '../image/image.js';
import { copySourceInto } from './raw.js';
import type { ImportSource } from './source.js';
import { VIEW_PREFIX } from '../image/views.js';

export const HIDDEN_PREFIX = '.import-';
/** The label of a hidden import naming the image it will become: a second import of that name is refused at its start, not at its end. */
const IMPORT_OF = 'strata.import-of';

/** An import still running (its writer lease is live) that will take `name`. */
function rivalImport(store: Store, tx: WriteTx, name: string): ImageRecord | undefined {
  const hidden = listImagesWithPrefix(tx, HIDDEN_PREFIX).filter((r) => r.labels[IMPORT_OF] === name);
  return hidden.find((r) => liveLeases(store, [r.id]).length > 0);
}

/** Which file, and which version of it, an image came from: size and mtime tell a changed file from the one imported. */
export function fileStamp(file: string): { file: string; fileBytes: number; modifiedAt: string } {
  const st = fs.statSync(file);
  return { file: path.resolve(file), fileBytes: st.size, modifiedAt: new Date(Math.floor(st.mtimeMs)).toISOString() };
}

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
  /** Compression of the new blocks: null for none; default, the store's setting (strata init --compress). */
  compress?: CodecSpec | null;
  /** The name may be IMAGE@SNAP: a snapshot another store pushed, pulled under its own name. */
  snapshotName?: boolean;
  /**
   * The name is derived from the content (a container layer's chain id): an import already
   * making it makes the same bytes, and the one that commits second goes on over the first's
   * (formats/oci/import.ts), so it is not refused at the start as a rival.
   */
  sameContentName?: boolean;
}

/** An import under way: write into `img`, then finish() or abandon(). */
export interface ImportTarget {
  readonly img: Image;
  /**
   * Flushes and gives the image its real name in one transaction. `size`
   * sets the final virtual size of an import begun without knowing it;
   * `source` replaces the record of where it came from, for what is known
   * only at the end (a received stream's content digest).
   */
  finish(size?: number, source?: Record<string, unknown>): ImageRecord;
  /** Drops the hidden image and everything written to it. */
  abandon(): void;
}

/**
 * Starts an import of `size` bytes (or, for a stream of unknown length,
 * `'unknown'`: written as if the image were as large as allowed, and cut to
 * the bytes received by finish()).
 */
export function beginImport(store: Store, name: string, size: number | 'unknown', opts: ImportOptions = {}): ImportTarget {
  const final = opts.snapshotName ? storedName(name) : imageName(name);
  const virtualSize = size === 'unknown' ? MAX_VIRTUAL_SIZE : checkVirtualSize(size);
  const compress = opts.compress === undefined ? storeCompression(store) : opts.compress;
  if (compress) requireCompressor(compress.codec);
  const tmp = `${HIDDEN_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}` as ImageName;
  // The hidden row and its writer lease commit together, and the lease is held until the rename
  // has committed: at no moment can another process's recovery take the import for abandoned.
  const made = leaseTx(
    store,
    (take, tx) => {
      assertNameFree(tx, final);
      const rival = opts.sameContentName ? undefined : rivalImport(store, tx, final);
      if (rival) throw new StrataError('E_EXISTS', `another import is already making an image named ${final}; wait for it, or import under another name`, { image: final });
      const parent = opts.parent === undefined ? null : resolveImage(tx, opts.parent);
      if (parent && !isFrozen(parent)) {
        throw badInput(`cannot import onto ${parent.name}: it is a writable leaf, whose changes would show through the new layer; snapshot or freeze it first`, {
          parent: parent.name,
        });
      }
      const rec = insertImage(tx, { name: tmp, kind: 'leaf', parentId: parent?.id ?? null, virtualSize, labels: { ...opts.labels, [IMPORT_OF]: final }, source: opts.source ?? null });
      return { rec, chain: chainOf(tx, rec), lease: take(store, rec.id, rec.name, 'write') };
    },
    { durable: true },
  );
  faultPoint('import.after-create');
  // lazyData: nobody else sees the image until finish(), whose flush makes all of it durable first.
  // 32 MiB: a lazy flush costs one commit, not a sync, so smaller batches cost little and keep an import's RSS low.
  const img = new Image(store, made.rec, made.chain, { writable: true, dirtyLimit: opts.dirtyLimit ?? 32 * 1024 * 1024, lease: made.lease, lazyData: true, compress: compress ?? undefined });
  const abandon = () => {
    try {
      img.close({ discard: true });
    } catch {
      // The import failed already; its error is the one worth reporting.
    }
    store.write((tx) => dropImageInTx(tx, getImage(tx, tmp)));
  };
  const finish = (size?: number, source?: Record<string, unknown>): ImageRecord => {
    try {
      if (size !== undefined) {
        checkVirtualSize(size);
        // The last block's bytes past the end read zero, as after a shrink, so a later grow shows zeros there.
        const tail = size % BLOCK_SIZE;
        if (tail !== 0) img.writeZeroes(size, BLOCK_SIZE - tail);
      }
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
      done = store.write((tx) => {
        assertNameFree(tx, final);
        updateImage(tx, made.rec.id, { name: final, labels: opts.labels ?? {}, kind: opts.writable ? 'leaf' : frozenKind(made.rec.parentId), ...(size !== undefined ? { virtualSize: size } : {}), ...(source ? { source } : {}) });
        faultPoint('import.before-rename-commit');
        return getImage(tx, final);
      });
    } catch (e) {
      abandon();
      throw e;
    }
    faultPoint('import.after-rename-commit');
    img.close();
    return done;
  };
  return { img, finish, abandon };
}

export function importSource(store: Store, src: ImportSource, name: string, opts: ImportOptions = {}): ImageRecord {
  const target = beginImport(store, name, src.size, opts);
  try {
    copySourceInto(src, target.img, opts.onProgress);
  } catch (e) {
    target.abandon();
    throw e;
  }
  return target.finish();
}

/** Strata's own images that nobody needs once no lease holds them: imports under way, point-in-time views (image/views.ts). */
const ABANDONABLE = [HIDDEN_PREFIX, VIEW_PREFIX];

/** Drops hidden images left by imports and views whose process died. Returns how many. */
export function recoverAbandoned(store: Store): number {
  // The look outside the transaction only saves the write lock when there is nothing to do: the
  // list that counts is the one inside it. An import listed a moment ago may have finished and
  // taken its real name since, and must not be dropped under it.
  const hidden = (r: Reader) => ABANDONABLE.flatMap((p) => listImagesWithPrefix(r, p));
  // A store marked damaged keeps them until check --repair clears it: every command would fail here.
  if (hidden(store).length === 0 || storeDamage(store)) return 0;
  return store.write((tx) => {
    let n = 0;
    for (const img of hidden(tx)) {
      if (liveLeases(store, [img.id]).length > 0) continue;
      dropImageInTx(tx, img);
      n++;
    }
    return n;
  });
}
