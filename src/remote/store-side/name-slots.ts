/**
 * Naming slots this store already holds in the own map of an image being
 * built (a pulled layer, under its hidden name): the entry of each block
 * names its slot, and the slot's refcount goes up by one, as a lazy clone
 * names the blocks it finds here. Nothing is read or written but the map.
 *
 * One function on purpose: when the store's map edit (tx.editMap) lands,
 * its body becomes `edit.set(block, slot)` per pair and the commit.
 */
import { SEGMENT_ENTRIES, slotEntry, type ImageRecord, type SegmentIndex, type SlotNumber, type WriteTx } from '../../store/core/index.js';
import { getImageById, updateImage, loadSegment, saveSegment, segClone, segCompact, segExpand } from '../../store/images/index.js';
import { addRef, applyRefDeltas, type RefDeltas } from '../../store/slots/index.js';

/** Sets block → slot for each pair in `image`'s own map (blocks ascending), with the refcounts and own-block count that follow. */
export function nameSlots(tx: WriteTx, image: ImageRecord, pairs: readonly { block: number; slot: SlotNumber }[]): void {
  const deltas: RefDeltas = new Map();
  let own = 0;
  for (let k = 0; k < pairs.length; ) {
    const seg = Math.floor(pairs[k].block / SEGMENT_ENTRIES);
    const a = segClone(segExpand(loadSegment(tx, image.id, seg as SegmentIndex))) as Uint32Array;
    for (; k < pairs.length && Math.floor(pairs[k].block / SEGMENT_ENTRIES) === seg; k++) {
      const i = pairs[k].block % SEGMENT_ENTRIES;
      if (a[i] >= 2) {
        addRef(deltas, a[i] - 2, -1);
        own--;
      }
      a[i] = slotEntry(pairs[k].slot);
      addRef(deltas, pairs[k].slot, 1);
      own++;
    }
    saveSegment(tx, image.id, seg as SegmentIndex, segCompact(a));
  }
  applyRefDeltas(tx, deltas);
  if (own !== 0) updateImage(tx, image.id, { ownBlocks: getImageById(tx, image.id).ownBlocks + own });
}
