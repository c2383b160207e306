/**
 * Naming slots this store already holds in the own map of an image being
 * built (a pulled layer, under its hidden name): the entry of each block
 * names its slot, and the slot's refcount goes up by one, as a lazy clone
 * names the blocks it finds here. Nothing is read or written but the map.
 */
import { slotEntry, type ImageRecord, type SlotNumber, type WriteTx } from '../../store/core/index.js';
import { editMap } from '../../store/images/index.js';

/** Sets block → slot for each pair in `image`'s own map; the map edit's commit settles the refcounts and own-block count. */
export function nameSlots(tx: WriteTx, image: ImageRecord, pairs: readonly { block: number; slot: SlotNumber }[]): void {
  const edit = editMap(tx, image);
  for (const { block, slot } of pairs) edit.set(block, slotEntry(slot));
  edit.commit();
}
