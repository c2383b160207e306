/**
 * What a user types to name an image, and the one place it is resolved:
 * a plain name (`vm02`) or a snapshot of an image (`vm02@good`, as ZFS
 * names them). Every command that takes an image goes through
 * resolveImage, so `IMAGE@SNAP` works wherever an image is named and a
 * miss reads the same everywhere, with a hint where one helps.
 *
 * A snapshot is stored under its full name, so resolution is one lookup;
 * the image a snapshot belongs to is the part before '@'. Stores made
 * before snapshots were scoped hold automatic ones as `IMAGE.snapN`: those
 * still belong to IMAGE (snapshotOwner), under the name they were given.
 */
import type Database from 'better-sqlite3';
import { findImage, getImage, listImagesWithPrefix, listVisibleImages, type Miss } from '../store/images/index.js';
import { SNAP_SEP, splitSnapshotName } from '../store/core/index.js';
import type { ImageRecord, Reader } from '../store/core/index.js';

/** The image `ref` names, or undefined. `scope`: a leaf whose snapshots a bare name may mean first (`rollback vm snap1`). */
export function findImageRef(db: Reader | Database.Database, ref: string, opts: { scope?: string } = {}): ImageRecord | undefined {
  if (opts.scope !== undefined && !ref.includes(SNAP_SEP)) {
    const own = findImage(db, `${opts.scope}${SNAP_SEP}${ref}`);
    if (own) return own;
  }
  return findImage(db, ref);
}

/** The image `ref` names; E_NOT_FOUND, with what the user may have meant, when none does. */
export function resolveImage(db: Reader | Database.Database, ref: string, opts: { scope?: string } = {}): ImageRecord {
  return findImageRef(db, ref, opts) ?? getImage(db, ref, () => missText(db, ref));
}

function missText(db: Reader | Database.Database, ref: string): Miss {
  const split = splitSnapshotName(ref);
  if (split) {
    if (!findImage(db, split.image) && snapshotsOf(db, split.image).length === 0) return { message: `no image named ${split.image} (in ${ref})` };
    const have = snapshotsOf(db, split.image).map((s) => shortName(s.name));
    return { message: `${split.image} has no snapshot ${split.snapshot}`, hint: have.length ? `its snapshots: ${listed(have)}` : 'it has no snapshots' };
  }
  // A bare name that is some image's snapshot: the name it had before snapshots were scoped.
  const snaps = listVisibleImages(db).filter((i) => splitSnapshotName(i.name)?.snapshot === ref);
  return { message: `no image named ${ref}`, ...(snaps.length ? { hint: `did you mean ${listed(snaps.map((s) => s.name), ' or ')}?` } : {}) };
}

const listed = (names: readonly string[], sep = ', ') => names.slice(0, 5).join(sep) + (names.length > 5 ? `${sep}…` : '');

/** The part of a snapshot's name after '@' (the whole name of anything else). */
export const shortName = (name: string): string => splitSnapshotName(name)?.snapshot ?? name;

/** Automatic snapshots of stores older than IMAGE@SNAP. */
const LEGACY_AUTO = /^(.+)\.snap[0-9]+$/;

/**
 * The image a snapshot belongs to (which may be gone), or null for an image
 * that is not a snapshot, or a legacy one named freely (owned by nobody, so
 * never removed unasked).
 */
export function snapshotOwner(rec: Pick<ImageRecord, 'name' | 'snapshotAt'>): string | null {
  const split = splitSnapshotName(rec.name);
  if (split) return split.image;
  if (rec.snapshotAt === null) return null;
  return LEGACY_AUTO.exec(rec.name)?.[1] ?? null;
}

/** Whether a snapshot made it (or its name says it is one): what `strata snapshots` lists. */
export const isSnapshot = (rec: Pick<ImageRecord, 'name' | 'snapshotAt'>): boolean => rec.snapshotAt !== null || splitSnapshotName(rec.name) !== null;

/** The snapshots of `owner` (whether or not it still exists), oldest first. */
export function snapshotsOf(db: Reader | Database.Database, owner: string): ImageRecord[] {
  const scoped = listImagesWithPrefix(db, `${owner}${SNAP_SEP}`);
  const legacy = listImagesWithPrefix(db, `${owner}.snap`).filter((i) => snapshotOwner(i) === owner);
  return [...scoped, ...legacy].sort(byAge);
}

/** Every snapshot in the store, by image, oldest first. */
export function allSnapshots(db: Database.Database): ImageRecord[] {
  return listVisibleImages(db)
    .filter(isSnapshot)
    .sort((a, b) => (snapshotOwner(a) ?? a.name).localeCompare(snapshotOwner(b) ?? b.name) || byAge(a, b));
}

/** Taken first, first; ids only grow, so they order snapshots taken in the same millisecond. */
const byAge = (a: ImageRecord, b: ImageRecord) => (a.snapshotAt ?? a.createdAt) - (b.snapshotAt ?? b.createdAt) || a.id - b.id;
