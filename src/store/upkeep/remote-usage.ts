/**
 * What this store's images hold only in a remote's packs: for each image,
 * the slots of its own map whose location is REMOTE (remote-locs.ts), by
 * remote. Read-only; one pass over the maps of every image, skipped
 * entirely while the store has no remote block.
 *
 * The figures behind `ls`/`tree`/`info`'s lazy mark, `check`'s remote-only
 * section, `remote rm`'s refusal and the bucket's dependents records.
 */
import { listImages } from '../images/catalog.js';
import { segmentsOf } from '../images/maps.js';
import { segGet } from '../images/segment.js';
import { prepared } from '../core/statements.js';
import { metaNumber } from '../core/meta.js';
import { SEGMENT_ENTRIES, type ImageId } from '../core/types.js';
import { sqlOf, type Reader } from '../core/tx.js';

/** Per image id: remote name → the distinct slots of its own map held only there. */
export type RemoteOnly = Map<ImageId, Map<string, Set<number>>>;

/** How many slots are still REMOTE, as counted in meta as they change (check compares it with remote_locs). */
export const countedRemoteBlocks = (on: Reader): number => metaNumber(on, 'remote_blocks');

/** Whether any block is still remote (a counter in meta: a store without lazy clones never reads remote_locs). */
export const hasRemoteBlocks = (on: Reader): boolean => countedRemoteBlocks(on) > 0;

/** The slots still REMOTE, with the remote each is fetched from. */
export function remoteSlotOwners(on: Reader): Map<number, string> {
  const db = sqlOf(on);
  if (!hasRemoteBlocks(on)) return new Map();
  return new Map(prepared(db, 'SELECT slot, remote FROM remote_locs').raw().all() as [number, string][]);
}

export function remoteOnlyByImage(on: Reader): RemoteOnly {
  const out: RemoteOnly = new Map();
  const far = remoteSlotOwners(on);
  if (far.size === 0) return out;
  for (const rec of listImages(on)) {
    for (const [, seg] of segmentsOf(on, rec.id)) {
      for (let i = 0; i < SEGMENT_ENTRIES; i++) {
        const e = segGet(seg, i);
        if (e < 2) continue;
        const remote = far.get(e - 2);
        if (remote === undefined) continue;
        let byRemote = out.get(rec.id);
        if (!byRemote) out.set(rec.id, (byRemote = new Map()));
        let s = byRemote.get(remote);
        if (!s) byRemote.set(remote, (s = new Set()));
        s.add(e - 2);
      }
    }
  }
  return out;
}

/** Distinct remote-only slots of `chain` (an image and its ancestors), by remote. */
export function chainRemoteOnly(only: RemoteOnly, chain: readonly { id: ImageId }[]): Map<string, number> {
  const sets = new Map<string, Set<number>>();
  for (const c of chain) {
    for (const [remote, slots] of only.get(c.id) ?? []) {
      let s = sets.get(remote);
      if (!s) sets.set(remote, (s = new Set()));
      for (const x of slots) s.add(x);
    }
  }
  return new Map([...sets].map(([r, s]) => [r, s.size]));
}
