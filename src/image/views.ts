/**
 * Point-in-time views of a leaf: a hidden frozen image holding what the leaf
 * held at one moment, for a reader (export, read) that must not see a
 * server's later writes. It is a sibling of the leaf (same parent, a copy of
 * the leaf's own map, its own references), not a snapshot in the leaf's
 * chain, so the leaf's chain never changes and dropping the view is one
 * transaction that nothing depends on.
 *
 * Lifetime: whoever makes a view holds a lease on it from the transaction
 * that makes it; a view without a live lease is abandoned and dropped by the
 * next recovery (formats/import.ts recoverAbandoned), so a crash at any step
 * leaves nothing a user must clean.
 */
import { StrataError } from '../errors.js';
import { assertNameFree, editMap, findImageById, getImage, insertImage, updateImage } from '../store/images/index.js';
import { liveLeases, writerOf, type Lease, type takeLease } from '../store/leases/index.js';
import { imageName } from '../store/core/index.js';
import type { Store, ImageName, ImageRecord, WriteTx } from '../store/core/index.js';
import { dropImageInTx, frozenKind } from './lifecycle.js';

export const VIEW_PREFIX = '.view-';

const viewName = (): ImageName => `${VIEW_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}` as ImageName;

/**
 * Inside a write transaction: a new hidden frozen image reading what `leaf`'s
 * committed map reads now, and a read lease on it for this process. The
 * copy costs a row per stored map segment and a reference per own block; no
 * data is copied.
 */
export function makeViewInTx(store: Store, tx: WriteTx, leaf: ImageRecord, take: typeof takeLease): { view: ImageRecord; lease: Lease } {
  if (leaf.kind !== 'leaf') throw new StrataError('E_BAD_INPUT', `image ${leaf.name} is frozen (${leaf.kind}) and needs no point-in-time view`, { image: leaf.name });
  const name = viewName();
  const rec = insertImage(tx, { name, kind: frozenKind(leaf.parentId), parentId: leaf.parentId, virtualSize: leaf.virtualSize, labels: leaf.labels });
  const edit = editMap(tx, rec);
  edit.copyOf(leaf.id);
  edit.commit({ row: { source: { viewOf: leaf.name } } });
  const view = getImage(tx, name);
  return { view, lease: take(store, view.id, view.name, 'read') };
}

/**
 * A view of a leaf nobody writes, made here: the check that no writer holds
 * it and the copy are one transaction. A writer is refused with E_BUSY, whose
 * data names its control socket (if it has one), as Image.snapshot's callers expect.
 */
export function makeLocalView(store: Store, tx: WriteTx, leafName: string, take: typeof takeLease): { view: ImageRecord; lease: Lease } {
  const leaf = getImage(tx, leafName);
  assertNoWriter(store, leaf);
  return makeViewInTx(store, tx, leaf, take);
}

/**
 * Refuses a leaf that another process is writing, with E_BUSY whose data
 * names the writer's pid and control socket (if it has one): a reader that
 * wants one point in time asks that writer for a view. Inside a write transaction.
 */
export function assertNoWriter(store: Store, leaf: ImageRecord): void {
  const w = writerOf(store, leaf.id);
  if (!w) return;
  throw new StrataError('E_BUSY', `image ${leaf.name} is open for writing by process ${w.pid}`, { image: leaf.name, pid: w.pid, ...(w.control ? { control: w.control } : {}) });
}

/** Drops a view unless a lease still holds it (its reader has it open). Returns whether it went. */
export function dropViewIfUnused(store: Store, view: ImageRecord): boolean {
  return store.write((tx) => {
    // Gone, kept under a name of its own (keepView, whose process may close it before the server that made it lets go), or read.
    const now = findImageById(tx, view.id);
    if (!now || now.name !== view.name || liveLeases(store, [view.id]).length > 0) return false;
    dropImageInTx(tx, now);
    return true;
  });
}

/** Gives a view a name of its own: the user asked to keep the point-in-time copy. */
export function keepView(store: Store, view: ImageRecord, name: string): ImageRecord {
  const n = imageName(name);
  return store.write((tx) => {
    assertNameFree(tx, n);
    updateImage(tx, view.id, { name: n });
    return getImage(tx, n);
  });
}
