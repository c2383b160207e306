/**
 * Image lifecycle: create, clone, snapshot, freeze, rename, rm. Each is one
 * transaction over catalog rows; none copies a map segment or a data block,
 * so each costs the same for a 1 GiB and a 1 TiB image.
 */
import { StrataError, badInput } from '../errors.js';
import {
  assertNameFree,
  childrenOf,
  deleteImageRow,
  descendantsOf,
  findImage,
  getImage,
  insertImage,
  updateImage,
} from '../store/catalog.js';
import { assertNotOpen } from '../store/leases.js';
import { countSlotRefs, segmentsOf } from '../store/maps.js';
import { applyRefDeltas } from '../store/refcounts.js';
import type { Store } from '../store/store.js';
import { BLOCK_SIZE, MAX_VIRTUAL_SIZE, isFrozen, type ImageId, type ImageKind, type ImageName, type ImageRecord } from '../store/types.js';
import { imageName } from '../store/names.js';
import { faultPoint } from '../store/faults.js';
import { collectGarbage } from '../store/gc.js';
import { metaNumber } from '../store/store.js';

/** 0 is a valid size, as in qemu: an empty disk reads nothing and is served with size 0. */
export function checkVirtualSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw badInput(`invalid virtual size ${size}: must be a whole number of bytes, 0 or more`);
  if (size > MAX_VIRTUAL_SIZE) throw badInput(`virtual size ${size} is over the limit of ${MAX_VIRTUAL_SIZE} bytes`);
  return size;
}

export const frozenKind = (parentId: ImageId | null): ImageKind => (parentId === null ? 'base' : 'layer');

export function createImage(store: Store, name: string, size: number, labels: Record<string, string> = {}): ImageRecord {
  const n = imageName(name);
  checkVirtualSize(size);
  return store.write(() => insertImage(store.db, { name: n, kind: 'leaf', parentId: null, virtualSize: size, labels }));
}

/** A free name for the frozen state a leaf is cloned or snapshotted from. */
function snapshotName(store: Store, leaf: string): ImageName {
  for (let i = 1; ; i++) {
    const n = `${leaf}.snap${i}`;
    if (!findImage(store.db, n)) return imageName(n);
  }
}

/**
 * Freezes a leaf's current content as a new read-only image; the leaf keeps
 * its name and goes on, empty, above it. The existing row (with all its map
 * segments) becomes the snapshot, so nothing is copied.
 */
function snapshotInTx(store: Store, leaf: ImageRecord, snapName: ImageName): { snapshot: ImageRecord; leaf: ImageRecord } {
  if (leaf.kind !== 'leaf') throw new StrataError('E_READONLY', `image ${leaf.name} is frozen (${leaf.kind}); only a leaf can be snapshotted`);
  assertNameFree(store.db, snapName);
  assertNotOpen(store, [leaf], `snapshot ${leaf.name}`);
  updateImage(store.db, leaf.id, { name: snapName, kind: frozenKind(leaf.parentId) });
  const next = insertImage(store.db, {
    name: leaf.name,
    kind: 'leaf',
    parentId: leaf.id,
    virtualSize: leaf.virtualSize,
    labels: leaf.labels,
    createdAt: leaf.createdAt,
  });
  return { snapshot: getImage(store.db, snapName), leaf: next };
}

export function snapshotImage(store: Store, leafName: string, snapName?: string): { snapshot: ImageRecord; leaf: ImageRecord } {
  const r = store.write(() => {
    const leaf = getImage(store.db, leafName);
    const done = snapshotInTx(store, leaf, snapName === undefined ? snapshotName(store, leaf.name) : imageName(snapName));
    faultPoint('snapshot.before-commit');
    return done;
  });
  faultPoint('snapshot.after-commit');
  return r;
}

/**
 * New writable leaves over `source`. A leaf source is snapshotted first, so
 * the source and its clones all go on from one frozen state.
 */
export function cloneImage(store: Store, source: string, names: readonly string[]): { parent: ImageRecord; clones: ImageRecord[]; snapshot?: ImageRecord } {
  if (names.length === 0) throw badInput('clone needs at least one new image name');
  const valid = names.map(imageName);
  const dup = valid.find((n, i) => valid.indexOf(n) !== i);
  if (dup) throw badInput(`image name ${dup} is given twice`);
  const r = store.write(() => {
    let parent = getImage(store.db, source);
    for (const n of valid) assertNameFree(store.db, n);
    let snapshot: ImageRecord | undefined;
    if (!isFrozen(parent)) {
      snapshot = snapshotInTx(store, parent, snapshotName(store, parent.name)).snapshot;
      parent = snapshot;
    }
    const clones = valid.map((name) => insertImage(store.db, { name, kind: 'leaf', parentId: parent.id, virtualSize: parent.virtualSize }));
    faultPoint('clone.before-commit');
    return { parent, clones, snapshot };
  });
  faultPoint('clone.after-commit');
  return r;
}

export function freezeImage(store: Store, name: string): ImageRecord {
  return store.write(() => {
    const img = getImage(store.db, name);
    if (isFrozen(img)) return img;
    assertNotOpen(store, [img], `freeze ${name}`);
    updateImage(store.db, img.id, { kind: frozenKind(img.parentId) });
    return getImage(store.db, name);
  });
}

export function renameImage(store: Store, from: string, to: string): ImageRecord {
  const n = imageName(to);
  return store.write(() => {
    const img = getImage(store.db, from);
    assertNameFree(store.db, n);
    // A server exports the image under its old name: renaming it underneath would send that
    // export's writes to an image whose name now belongs to another.
    assertNotOpen(store, [img], `rename ${from}`);
    updateImage(store.db, img.id, { name: n });
    return getImage(store.db, n);
  });
}

/** Drops an image's rows and its references; its slots become free when the count reaches zero. */
export function dropImageInTx(store: Store, img: ImageRecord): void {
  const refs = new Map<number, number>();
  for (const [, s] of segmentsOf(store.db, img.id)) countSlotRefs(s, refs);
  for (const [slot, n] of refs) refs.set(slot, -n);
  applyRefDeltas(store.db, refs);
  deleteImageRow(store.db, img.id);
}

/** The images `rm names` removes, children before parents; refuses a subtree without `recursive`. */
function doomedImages(store: Store, names: readonly string[], opts: { recursive?: boolean }): ImageRecord[] {
  const doomed: ImageRecord[] = [];
  const seen = new Set<number>();
  for (const name of names) {
    const img = getImage(store.db, name);
    const below = descendantsOf(store.db, img.id);
    if (below.length > 0 && !opts.recursive) {
      const kids = childrenOf(store.db, img.id).map((c) => c.name);
      throw new StrataError('E_HAS_CHILDREN', `image ${name} has ${kids.length} child image(s) (${kids.slice(0, 5).join(', ')}${kids.length > 5 ? ', …' : ''}); remove them first or use -r`, {
        image: name,
        children: kids,
      });
    }
    // Children before parents.
    for (const r of [...below.reverse(), img]) {
      if (!seen.has(r.id)) {
        seen.add(r.id);
        doomed.push(r);
      }
    }
  }
  return doomed;
}

/**
 * What `rm` would do, changing nothing: the images, and the bytes of stored
 * data that would be freed (slots every one of whose references is in the
 * removed images' maps).
 */
export function planRemoval(store: Store, names: readonly string[], opts: { recursive?: boolean } = {}): { images: ImageRecord[]; freedBytes: number } {
  return store.db.transaction(() => {
    const images = doomedImages(store, names, opts);
    const refs = new Map<number, number>();
    for (const img of images) for (const [, s] of segmentsOf(store.db, img.id)) countSlotRefs(s, refs);
    const refcount = store.db.prepare('SELECT refcount FROM blocks WHERE slot = ?').pluck();
    let freed = 0;
    for (const [slot, n] of refs) if (refcount.get(slot) === n) freed++;
    return { images, freedBytes: freed * BLOCK_SIZE };
  }).deferred();
}

export function removeImages(store: Store, names: readonly string[], opts: { recursive?: boolean } = {}): ImageRecord[] {
  const r = store.write(() => {
    const doomed = doomedImages(store, names, opts);
    assertNotOpen(store, doomed, `remove ${doomed.map((d) => d.name).join(', ')}`);
    for (const img of doomed) dropImageInTx(store, img);
    faultPoint('rm.before-commit');
    return doomed;
  });
  faultPoint('rm.after-commit');
  return r;
}

export interface RemovalReport {
  removed: ImageRecord[];
  /** Stored data the removal freed. */
  freedBytes: number;
  /** Of that, given back to the file system at once. */
  reclaimedBytes: number;
  /** Of that, still visible to a live reader (or check): returned by gc once it ends. */
  pinnedBytes: number;
  /** False where the data files cannot have holes punched: only a freed tail is returned. */
  punchSupported: boolean;
}

/**
 * rm as a user expects it from zfs destroy: the space comes back. After the
 * removal commits, the slots it freed are punched (and the store's tail cut)
 * by gc's own code, which skips what a live reader may still see; a kill
 * between the two leaves only free slots that the next gc returns.
 */
export function removeImagesAndReclaim(store: Store, names: readonly string[], opts: { recursive?: boolean } = {}): RemovalReport {
  const since = metaNumber(store.db, 'free_epoch');
  const removed = removeImages(store, names, opts);
  const gc = collectGarbage(store, { freedAfter: since });
  const f = gc.freed ?? { slots: 0, reclaimed: 0, pinned: 0 };
  return { removed, freedBytes: f.slots * BLOCK_SIZE, reclaimedBytes: f.reclaimed * BLOCK_SIZE, pinnedBytes: f.pinned * BLOCK_SIZE, punchSupported: gc.punchSupported };
}
