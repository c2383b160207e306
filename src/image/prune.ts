/**
 * Prune: the images no name leads to, as `docker image prune` finds
 * dangling layers. An image is kept when a user can reach it: it is a
 * writable leaf, a frozen image with a name of its own, a snapshot whose
 * image still exists, open by any process (a server, an import under way),
 * or below any of those in a chain (a lazy clone's layers are below its
 * leaf). What is left are container layers whose images were removed,
 * snapshots of images that are gone, and strata's own hidden images that
 * nobody holds; removing them never changes what any kept image reads.
 */
import { chainOf, getImageById, listImages } from '../store/images/index.js';
import { faultPoint } from '../store/core/index.js';
import { leasedImageIds } from '../store/leases/index.js';
import type { Store, ImageRecord, OnProgress, WriteTx } from '../store/core/index.js';
import { dropImagesInTx, exclusiveBytes, reclaiming, type Reclaimed } from './lifecycle.js';
import { snapshotOwner } from './refs.js';

export type PrunedKind = 'container layer' | 'snapshot' | 'hidden image';

export interface Prunable {
  image: ImageRecord;
  kind: PrunedKind;
  /** Why nothing leads to it, for people: "its image t1 is gone". */
  why: string;
}

const isHidden = (rec: ImageRecord) => rec.name.startsWith('.');
const isContainerLayer = (rec: ImageRecord) => rec.source?.format === 'oci-layer';

/**
 * What prune would remove, children before parents. In a write transaction
 * (leases are read there, and dead ones dropped): act only on this answer.
 */
export function prunableImages(store: Store, tx: WriteTx): Prunable[] {
  const all = listImages(tx);
  const byId = new Map<number, ImageRecord>(all.map((r) => [r.id, r]));
  const leased = new Set<number>(leasedImageIds(store));
  const names = new Set<string>(all.map((r) => r.name));
  const named = (rec: ImageRecord): boolean => {
    if (leased.has(rec.id) || rec.kind === 'leaf') return true;
    if (isHidden(rec) || isContainerLayer(rec)) return false;
    // Only a snapshot taken here belongs to an image of this store: one pulled under an IMAGE@SNAP name was asked for by that name.
    if (rec.snapshotAt === null) return true;
    const owner = snapshotOwner(rec);
    return owner === null || names.has(owner);
  };
  // One pass over the catalog in memory: every rm asks this, and a query per image and chain link would grow with the store.
  const kept = new Set<number>();
  for (const rec of all) {
    if (!named(rec)) continue;
    for (let cur: ImageRecord | undefined = rec; cur !== undefined && !kept.has(cur.id); cur = cur.parentId === null ? undefined : byId.get(cur.parentId)) kept.add(cur.id);
  }
  const depth = (rec: ImageRecord) => {
    let d = 0;
    for (let cur: ImageRecord | undefined = rec; cur !== undefined && d <= all.length; cur = cur.parentId === null ? undefined : byId.get(cur.parentId)) d++;
    return d;
  };
  // Everything above a pruned image is pruned too (a kept image keeps its whole chain), so deepest first is children first.
  return all
    .filter((r) => !kept.has(r.id))
    .map((image) => ({ image, depth: depth(image) }))
    .sort((a, b) => b.depth - a.depth || b.image.id - a.image.id)
    .map(({ image }) => describe(image));
}

function describe(image: ImageRecord): Prunable {
  if (isHidden(image)) return { image, kind: 'hidden image', why: 'left by an interrupted import' };
  if (isContainerLayer(image)) return { image, kind: 'container layer', why: 'no container image uses it' };
  const owner = snapshotOwner(image);
  return { image, kind: 'snapshot', why: owner === null ? 'nothing uses it' : `its image ${owner} is gone` };
}

export interface PruneReport extends Reclaimed {
  pruned: Prunable[];
}

/** What prune would remove and the stored data that would free; changes nothing but dead lease rows. */
export function planPrune(store: Store): { pruned: Prunable[]; freedBytes: number } {
  return store.write((tx) => {
    const pruned = prunableImages(store, tx);
    return { pruned, freedBytes: exclusiveBytes(store, pruned.map((p) => p.image)) };
  });
}

/** Removes what no name leads to, in one transaction, and returns the space (as rm does). */
export function pruneImages(store: Store, opts: { onProgress?: OnProgress } = {}): PruneReport {
  const { result, ...space } = reclaiming(store, () => {
    const r = store.write((tx) => {
      const pruned = prunableImages(store, tx);
      dropImagesInTx(tx, pruned.map((p) => p.image), opts.onProgress);
      faultPoint('prune.before-commit');
      return pruned;
    });
    faultPoint('prune.after-commit');
    return r;
  });
  return { pruned: result, ...space };
}

/**
 * The images a removal just left with nothing leading to them, among the
 * chains the removed images stood on: what `rm` tells the user to prune.
 */
export function leftBehind(store: Store, removed: readonly ImageRecord[]): { images: Prunable[]; bytes: number } {
  return store.write((tx) => {
    const gone = new Set<number>(removed.map((r) => r.id));
    const below = new Set<number>();
    for (const r of removed) {
      if (r.parentId === null || gone.has(r.parentId)) continue;
      for (const c of chainOf(tx, getImageById(tx, r.parentId))) below.add(c.id);
    }
    if (below.size === 0) return { images: [], bytes: 0 };
    const images = prunableImages(store, tx).filter((p) => below.has(p.image.id));
    return { images, bytes: exclusiveBytes(store, images.map((p) => p.image)) };
  });
}
