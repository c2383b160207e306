import { badInput } from '../../errors.js';
import type { ImageName } from './types.js';

/**
 * Names never become paths, but they do appear in NBD export lists, URLs and
 * shell commands, so only a plain character set is accepted.
 */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/**
 * A snapshot is named for the image it was taken of, IMAGE@SNAP, as in ZFS:
 * '@' is never in a plain name, so a snapshot's name can never clash with an
 * image's, and two images may each have a snapshot called "good".
 */
export const SNAP_SEP = '@';

const shown = (raw: string) => JSON.stringify(raw.length > 64 ? raw.slice(0, 64) + '…' : raw);
const valid = (raw: string) => NAME_RE.test(raw) && !raw.includes('..');

export function imageName(raw: string): ImageName {
  if (typeof raw !== 'string' || raw.length === 0) throw badInput('image name is empty');
  if (!valid(raw)) {
    throw badInput(
      `invalid image name ${shown(raw)}: use 1-128 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit, without ".."${raw.includes(SNAP_SEP) ? ' ("@" names a snapshot: IMAGE@SNAP)' : ''}`,
      { name: raw },
    );
  }
  return raw as ImageName;
}

/** IMAGE@SNAP: the name of `owner`'s snapshot `snap`; the part after '@' obeys the rules of an image name. */
export function snapshotName(owner: string, snap: string): ImageName {
  if (typeof snap !== 'string' || snap.length === 0) throw badInput(`snapshot name is empty (in ${owner}${SNAP_SEP})`);
  if (!valid(snap)) {
    throw badInput(`invalid snapshot name ${shown(snap)}: use 1-128 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit, without ".."`, { snapshot: snap });
  }
  return `${owner}${SNAP_SEP}${snap}` as ImageName;
}

/** IMAGE@SNAP split at its '@'; null for a plain name. Syntax only: neither part need exist. */
export function splitSnapshotName(name: string): { image: string; snapshot: string } | null {
  const at = name.indexOf(SNAP_SEP);
  return at < 0 ? null : { image: name.slice(0, at), snapshot: name.slice(at + 1) };
}

/** A name the catalog may hold: a plain image name or IMAGE@SNAP (a manifest's chain carries both). */
export function storedName(raw: string): ImageName {
  const s = typeof raw === 'string' ? splitSnapshotName(raw) : null;
  return s ? snapshotName(imageName(s.image), s.snapshot) : imageName(raw);
}
