/**
 * Image lifecycle: create, clone, snapshot, freeze, rename, rm. Each is one
 * transaction over catalog rows; none copies a map segment or a data block,
 * so each costs the same for a 1 GiB and a 1 TiB image.
 */
import { StrataError, badInput } from '../errors.js';
import { bytesText } from '../units.js';
import {
  assertNameFree,
  chainOf,
  childrenOf,
  deleteImageRow,
  descendantsOf,
  findImage,
  getImage,
  getImageById,
  insertImage,
  updateImage,
} from '../store/images/index.js';
import { assertNotOpen, liveLeases, type Lease } from '../store/leases/index.js';
import { editMap, ownSlotRefs } from '../store/images/index.js';
import { freeEpoch, slotReader } from '../store/slots/index.js';
import type { Store, WriteTx } from '../store/core/index.js';
import { BLOCK_SIZE, MAX_VIRTUAL_SIZE, isFrozen, type ImageId, type ImageKind, type ImageName, type ImageRecord, type OnProgress, imageName, snapshotName, splitSnapshotName, SNAP_SEP, faultPoint, readTx } from '../store/core/index.js';
import { resolveImage, snapshotOwner, snapshotsOf } from './refs.js';
import { collectGarbage } from '../store/upkeep/index.js';

/** 0 is a valid size, as in qemu: an empty disk reads nothing and is served with size 0. */
export function checkVirtualSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw badInput(`invalid virtual size ${size}: must be a whole number of bytes, 0 or more`);
  if (size > MAX_VIRTUAL_SIZE) throw badInput(`virtual size ${bytesText(size)} is over the limit of ${bytesText(MAX_VIRTUAL_SIZE)}`);
  return size;
}

export const frozenKind = (parentId: ImageId | null): ImageKind => (parentId === null ? 'base' : 'layer');

export function createImage(store: Store, name: string, size: number, labels: Record<string, string> = {}): ImageRecord {
  const n = imageName(name);
  checkVirtualSize(size);
  return store.write((tx) => insertImage(tx, { name: n, kind: 'leaf', parentId: null, virtualSize: size, labels }));
}

/**
 * The name of a leaf's next automatic snapshot, LEAF.snapN, with N past every
 * number this leaf has had (even if those snapshots were removed or rolled
 * back over), so numbers only grow up the chain.
 */
function nextSnapshot(store: Store, leaf: ImageRecord): { name: ImageName; seq: number } {
  for (let n = leaf.snapSeq + 1; ; n++) {
    const name = snapshotName(leaf.name, `snap${n}`);
    if (!findImage(store, name)) return { name, seq: n };
  }
}

/**
 * The full name of a snapshot of `leaf` the user called `snap`: `good` and
 * `vm02@good` both mean vm02@good; another image's name before '@' is refused
 * (a snapshot always belongs to the image it was taken of).
 */
export function userSnapshotName(leaf: string, snap: string): ImageName {
  const split = splitSnapshotName(snap);
  if (split && split.image !== leaf) {
    throw badInput(`snapshot name ${snap} names image ${split.image}: a snapshot of ${leaf} is ${leaf}${SNAP_SEP}${split.snapshot}`, { image: leaf, snapshot: snap });
  }
  return snapshotName(leaf, split ? split.snapshot : snap);
}

export interface SnapshotResult {
  snapshot: ImageRecord;
  leaf: ImageRecord;
}

/**
 * Freezes a leaf's current content as a new read-only image; the leaf keeps
 * its name and goes on, empty, above it. The existing row (with all its map
 * segments) becomes the snapshot, so nothing is copied. Readers of the leaf
 * may stay: what they read is the snapshot now, which never changes. A
 * writer must not, except `except`: the writer taking the snapshot itself
 * (Image.snapshot), which has flushed and moves its lease to the new leaf.
 */
export function snapshotInTx(store: Store, tx: WriteTx, leaf: ImageRecord, snapName: string | undefined, opts: { except?: Lease } = {}): SnapshotResult {
  if (leaf.kind !== 'leaf') throw new StrataError('E_READONLY', `image ${leaf.name} is frozen (${leaf.kind}); only a leaf can be snapshotted`);
  const auto = snapName === undefined ? nextSnapshot(store, leaf) : null;
  const name = auto?.name ?? userSnapshotName(leaf.name, snapName!);
  assertNameFree(tx, name);
  assertNotOpen(store, [leaf], `snapshot ${leaf.name}`, { writersOnly: true, except: opts.except });
  updateImage(tx, leaf.id, { name, kind: frozenKind(leaf.parentId), snapshotAt: Date.now() });
  const next = insertImage(tx, {
    name: leaf.name,
    kind: 'leaf',
    parentId: leaf.id,
    virtualSize: leaf.virtualSize,
    labels: leaf.labels,
    createdAt: leaf.createdAt,
    snapSeq: auto?.seq ?? leaf.snapSeq,
  });
  return { snapshot: getImage(tx, name), leaf: next };
}

/**
 * Snapshots a leaf nobody is writing. A leaf a server writes is refused with
 * E_BUSY whose data names the server's control socket: the server takes the
 * snapshot itself (Image.snapshot), between two of its writes.
 */
export function snapshotImage(store: Store, leafName: string, snapName?: string): SnapshotResult {
  const r = store.write((tx) => {
    const leaf = resolveImage(tx, leafName);
    const done = snapshotInTx(store, tx, leaf, snapName);
    faultPoint('snapshot.before-commit');
    return done;
  });
  faultPoint('snapshot.after-commit');
  return r;
}

/** What snapshot reports, the same whether it ran here or in the server that holds the leaf. */
export const snapshotSummary = (r: SnapshotResult) => ({ snapshot: r.snapshot.name, kind: r.snapshot.kind, leaf: r.leaf.name });

export interface CloneResult {
  parent: ImageRecord;
  clones: ImageRecord[];
  snapshot?: ImageRecord;
}

/** Checks clone names before any work: valid, distinct. */
export function cloneNames(names: readonly string[]): ImageName[] {
  if (names.length === 0) throw badInput('clone needs at least one new image name');
  const valid = names.map(imageName);
  const dup = valid.find((n, i) => valid.indexOf(n) !== i);
  if (dup) throw badInput(`image name ${dup} is given twice`);
  return valid;
}

/** New leaves over a frozen parent, inside the caller's transaction. */
export function insertClones(tx: WriteTx, parent: ImageRecord, names: readonly ImageName[]): ImageRecord[] {
  return names.map((name) => insertImage(tx, { name, kind: 'leaf', parentId: parent.id, virtualSize: parent.virtualSize }));
}

/**
 * New writable leaves over `source`. A leaf source is snapshotted first, so
 * the source and its clones all go on from one frozen state (a served leaf:
 * see snapshotImage).
 */
export function cloneImage(store: Store, source: string, names: readonly string[]): CloneResult {
  const valid = cloneNames(names);
  const r = store.write((tx) => {
    let parent = resolveImage(tx, source);
    for (const n of valid) assertNameFree(tx, n);
    let snapshot: ImageRecord | undefined;
    if (!isFrozen(parent)) {
      snapshot = snapshotInTx(store, tx, parent, undefined).snapshot;
      parent = snapshot;
    }
    const clones = insertClones(tx, parent, valid);
    faultPoint('clone.before-commit');
    return { parent, clones, snapshot };
  });
  faultPoint('clone.after-commit');
  return r;
}

export const cloneSummary = (r: CloneResult) => ({ parent: r.parent.name, snapshot: r.snapshot?.name ?? null, clones: r.clones.map((c) => c.name) });

export interface RollbackResult {
  leaf: ImageRecord;
  to: ImageRecord;
  /** Own data of the leaf that the rollback dropped. */
  discardedBytes: number;
  /** Snapshots between the leaf and `to` that stay, as images of their own. */
  skipped: string[];
}

/**
 * Makes a leaf read exactly what one of the frozen images below it reads
 * (by default its parent, the latest snapshot): its own changes are
 * dropped, and it goes on over that image, at that image's size. Snapshots
 * in between are kept (clones may stand on them), unlike `zfs rollback -r`.
 * Refused while any process has the leaf open: a running guest would see
 * its disk change under it.
 */
export function rollbackImage(store: Store, leafName: string, to?: string): RollbackResult {
  const r = store.write((tx) => {
    const leaf = resolveImage(tx, leafName);
    if (leaf.kind !== 'leaf') throw new StrataError('E_READONLY', `image ${leafName} is frozen (${leaf.kind}); rollback resets a writable leaf`, { image: leafName });
    const chain = chainOf(tx, leaf);
    if (chain.length < 2) throw badInput(`image ${leafName} has no snapshot to roll back to`, { image: leafName });
    // `rollback vm snap1` means vm's own snapshot first, as `zfs rollback vm@snap1`.
    const target = to === undefined ? chain[1] : resolveImage(tx, to, { scope: leaf.name });
    const at = chain.findIndex((c, i) => i > 0 && c.id === target.id);
    if (at < 0) {
      throw badInput(`cannot roll back ${leafName} to ${to}: ${to} is not below ${leafName} (its chain: ${chain.slice(1).map((c) => c.name).join(' → ')})`, { image: leafName, to });
    }
    assertNotOpen(store, [leaf], `roll back ${leafName}`);
    const edit = editMap(tx, leaf);
    edit.dropAll();
    edit.commit({ row: { parentId: target.id, virtualSize: target.virtualSize } });
    faultPoint('rollback.before-commit');
    return { leaf: getImageById(tx, leaf.id), to: target, discardedBytes: leaf.ownBlocks * BLOCK_SIZE, skipped: chain.slice(1, at).map((c) => c.name) };
  });
  faultPoint('rollback.after-commit');
  return r;
}

/** `wasFrozen`: the image was frozen already and nothing changed. */
export function freezeImage(store: Store, name: string): ImageRecord & { wasFrozen: boolean } {
  return store.write((tx) => {
    const img = resolveImage(tx, name);
    if (isFrozen(img)) return { ...img, wasFrozen: true };
    assertNotOpen(store, [img], `freeze ${name}`);
    updateImage(tx, img.id, { kind: frozenKind(img.parentId) });
    return { ...getImageById(tx, img.id), wasFrozen: false };
  });
}

/**
 * Renames an image, and its snapshots with it (vm02@good becomes vm03@good),
 * so they stay its own. A snapshot is renamed within its image: `good` or
 * `vm02@better` for vm02@good, never into another image's name.
 */
export function renameImage(store: Store, from: string, to: string): ImageRecord {
  return store.write((tx) => {
    const img = resolveImage(tx, from);
    const owner = splitSnapshotName(img.name)?.image;
    const n = owner === undefined ? imageName(to) : userSnapshotName(owner, to);
    assertNameFree(tx, n);
    const snaps = owner === undefined ? snapshotsOf(tx, img.name).filter((s) => splitSnapshotName(s.name) !== null) : [];
    const moved = snaps.map((s) => ({ rec: s, to: snapshotName(n, splitSnapshotName(s.name)!.snapshot) }));
    for (const m of moved) assertNameFree(tx, m.to);
    // A server exports the image under its old name: renaming it underneath would send that
    // export's writes to an image whose name now belongs to another.
    assertNotOpen(store, [img, ...snaps], `rename ${from}`);
    updateImage(tx, img.id, { name: n });
    for (const m of moved) updateImage(tx, m.rec.id, { name: m.to });
    return getImageById(tx, img.id);
  });
}

/**
 * Drops images' rows and their maps, children before parents; a slot
 * becomes free when its count reaches zero. Their maps are dropped in one
 * edit, so a slot they share is updated once.
 */
export function dropImagesInTx(tx: WriteTx, imgs: readonly ImageRecord[], onProgress?: OnProgress): void {
  if (imgs.length === 0) return;
  const edit = editMap(tx, imgs[0]);
  for (const img of imgs) edit.of(img).dropAll();
  edit.commit({ onProgress });
  for (const img of imgs) deleteImageRow(tx, img.id);
}

export const dropImageInTx = (tx: WriteTx, img: ImageRecord): void => dropImagesInTx(tx, [img]);

/** A snapshot `rm IMAGE` leaves, and the images that stand on it. */
export interface KeptSnapshot {
  name: string;
  dependents: string[];
  /** The process that has it open (a server exporting it, a reader), when that is why it stays. */
  openBy?: number;
}

export interface RemovalPlan {
  /** Children before parents: the named images, what -r adds, then their own snapshots. */
  images: ImageRecord[];
  /** Of those, the snapshots that go with the images they belong to. */
  snapshots: ImageRecord[];
  kept: KeptSnapshot[];
}

export interface RemoveOptions {
  recursive?: boolean;
  /** Also remove the named images' own snapshots (IMAGE@SNAP) that nothing else stands on, as `zfs destroy -r` would. */
  withSnapshots?: boolean;
}

/** The images `rm names` removes, children before parents; refuses a subtree without `recursive`. */
function doomedImages(store: Store, names: readonly string[], opts: RemoveOptions, openBy: (id: ImageId) => number | undefined = () => undefined): RemovalPlan {
  const doomed: ImageRecord[] = [];
  const seen = new Set<number>();
  const named: ImageRecord[] = [];
  for (const name of names) {
    const img = resolveImage(store, name);
    named.push(img);
    const below = descendantsOf(store, img.id);
    if (below.length > 0 && !opts.recursive) {
      const kids = childrenOf(store, img.id).map((c) => c.name);
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
  if (!opts.withSnapshots) return { images: doomed, snapshots: [], kept: [] };
  // An image's own snapshots go too, unless something that stays stands on one (a clone,
  // or a snapshot kept for one): dropping those would take the clone's data with them.
  const own = named
    .filter((i) => snapshotOwner(i) === null)
    .flatMap((i) => snapshotsOf(store, i.name))
    .filter((s) => !seen.has(s.id));
  // One a process has open stays too: a reader or server of it would be refused the removal of the image it does not read.
  const going = new Set<number>(own.filter((s) => openBy(s.id) === undefined).map((s) => s.id));
  const staying = (c: ImageRecord) => !seen.has(c.id) && !going.has(c.id);
  for (let changed = true; changed; ) {
    changed = false;
    for (const s of own) {
      if (going.has(s.id) && childrenOf(store, s.id).some(staying)) {
        going.delete(s.id);
        changed = true;
      }
    }
  }
  // Newest first: a snapshot's parent is older than it, so children go before parents.
  const snapshots = own.filter((s) => going.has(s.id)).reverse();
  const kept = own
    .filter((s) => !going.has(s.id))
    .map((s) => {
      const pid = openBy(s.id);
      return { name: s.name, dependents: childrenOf(store, s.id).filter(staying).map((c) => c.name), ...(pid === undefined ? {} : { openBy: pid }) };
    });
  return { images: [...doomed, ...snapshots], snapshots, kept };
}

/** Bytes of stored data that only `images` use: what removing all of them would free. Call inside a transaction. */
export function exclusiveBytes(store: Store, images: readonly ImageRecord[]): number {
  const refs = ownSlotRefs(store, images.map((i) => i.id));
  const now = slotReader(store);
  let freed = 0;
  for (const [slot, n] of refs) if (now.refcount(slot) === n) freed++;
  return freed * BLOCK_SIZE;
}

/**
 * What `rm` would do, changing nothing: the images, and the bytes of stored
 * data that would be freed (slots every one of whose references is in the
 * removed images' maps).
 */
export function planRemoval(store: Store, names: readonly string[], opts: RemoveOptions = {}): RemovalPlan & { freedBytes: number } {
  return readTx(store, () => {
    const plan = doomedImages(store, names, opts);
    return { ...plan, freedBytes: exclusiveBytes(store, plan.images) };
  });
}

function removeInTx(store: Store, names: readonly string[], opts: RemoveOptions & { onProgress?: OnProgress }): RemovalPlan {
  const r = store.write((tx) => {
    const plan = doomedImages(store, names, opts, (id) => liveLeases(store, [id])[0]?.pid);
    const doomed = plan.images;
    assertNotOpen(store, doomed, `remove ${doomed.map((d) => d.name).join(', ')}`);
    dropImagesInTx(tx, doomed, opts.onProgress);
    faultPoint('rm.before-commit');
    return plan;
  });
  faultPoint('rm.after-commit');
  return r;
}

/** Removes images in one transaction. `onProgress` counts the references released; a throw from it removes nothing. */
export function removeImages(store: Store, names: readonly string[], opts: RemoveOptions & { onProgress?: OnProgress } = {}): ImageRecord[] {
  return removeInTx(store, names, opts).images;
}

export interface RemovalReport extends Reclaimed {
  removed: ImageRecord[];
  /** Of those, snapshots that went with their image. */
  snapshots: ImageRecord[];
  /** Snapshots of the removed images that stay, because other images stand on them. */
  kept: KeptSnapshot[];
}

/** What a removal gave back: stored data freed, and where it went. */
export interface Reclaimed {
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
 * Runs `remove` (which commits a removal), then punches the slots it freed
 * (and cuts the store's tail) by gc's own code, which skips what a live
 * reader may still see; a kill between the two leaves only free slots that
 * the next gc returns.
 */
export function reclaiming<T>(store: Store, remove: () => T): { result: T } & Reclaimed {
  const since = freeEpoch(store);
  const result = remove();
  // Not stopped by onProgress: once the removal has committed, "interrupted, nothing removed" would be false.
  const gc = collectGarbage(store, { freedAfter: since });
  const f = gc.freed ?? { slots: 0, reclaimed: 0, pinned: 0 };
  return { result, freedBytes: f.slots * BLOCK_SIZE, reclaimedBytes: f.reclaimed * BLOCK_SIZE, pinnedBytes: f.pinned * BLOCK_SIZE, punchSupported: gc.punchSupported };
}

/** rm as a user expects it from zfs destroy: the space comes back (see reclaiming). */
export function removeImagesAndReclaim(store: Store, names: readonly string[], opts: RemoveOptions & { onProgress?: OnProgress } = {}): RemovalReport {
  const { result, ...space } = reclaiming(store, () => removeInTx(store, names, opts));
  return { removed: result.images, snapshots: result.snapshots, kept: result.kept, ...space };
}
