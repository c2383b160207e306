/**
 * Which images share an image's blocks: for image X and every other image Y,
 * the bytes of X's own map whose slot Y's own map references too. Equal slot
 * numbers are equal content (the store keeps each distinct block once), so
 * this finds the same data wherever it lies: a file that two leaves both
 * installed, a layer that rewrote its parent's files at other offsets.
 *
 * Counted per map entry of X, like `du`'s own and shared: the bytes shared
 * with one image are at most X's shared bytes, and the figures over several
 * images may overlap (one block can be in many).
 */
import { resolveImage } from './refs.js';
import { listVisibleImages, ownSlotRefs } from '../store/images/index.js';
import { readTx, type Store } from '../store/core/index.js';
import { BLOCK_SIZE, type ImageRecord } from '../store/core/index.js';

export interface SharedWith {
  name: string;
  kind: string;
  /** Bytes of the image's own data that this one's own map holds too. */
  sharedBytes: number;
}

export interface Sharing {
  name: string;
  ownBytes: number;
  /** Images holding any of its own blocks, most shared bytes first (then by name). */
  sharedWith: SharedWith[];
}

function ownRefs(store: Store, img: ImageRecord): Map<number, number> {
  return ownSlotRefs(store, [img.id]);
}

/** The images that share `name`'s own blocks, read in one snapshot; `limit` keeps the first ones. */
export function sharingOf(store: Store, name: string, limit = Infinity): Sharing {
  return readTx(store, () => {
    const img = resolveImage(store, name);
    const mine = ownRefs(store, img);
    let own = 0;
    for (const n of mine.values()) own += n;
    const out: SharedWith[] = [];
    if (mine.size > 0) {
      for (const other of listVisibleImages(store)) {
        // An image without blocks of its own (a fresh clone) shares nothing: no need to read its map.
        if (other.id === img.id || other.ownBlocks === 0) continue;
        let shared = 0;
        for (const slot of ownRefs(store, other).keys()) shared += mine.get(slot) ?? 0;
        if (shared > 0) out.push({ name: other.name, kind: other.kind, sharedBytes: shared * BLOCK_SIZE });
      }
    }
    out.sort((a, b) => b.sharedBytes - a.sharedBytes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { name: img.name, ownBytes: own * BLOCK_SIZE, sharedWith: out.slice(0, limit) };
  });
}
