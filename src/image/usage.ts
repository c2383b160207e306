/**
 * Space accounting from the maps alone (no data is read).
 * - referenced: blocks of stored data an image reads through its whole chain;
 * - own: blocks its own layer maps;
 * - stored: slots in use, over the whole store.
 */
import { chainOf, listImages } from '../store/catalog.js';
import type { Store } from '../store/store.js';
import { BLOCK_SIZE, SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../store/types.js';
import type { Segment } from '../store/segment.js';
import { resolveFrozen } from './resolve.js';

function countSlots(s: Segment): number {
  if (typeof s === 'number') return s >= 2 ? SEGMENT_ENTRIES : 0;
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s[i] >= 2) n++;
  return n;
}

/** Segments that hold any entry in the image's chain. */
export function chainSegments(store: Store, chain: readonly ImageRecord[]): SegmentIndex[] {
  const ids = chain.map((c) => c.id);
  return store.db
    .prepare(`SELECT DISTINCT seg FROM segments WHERE image_id IN (${ids.map(() => '?').join(',')}) ORDER BY seg`)
    .pluck()
    .all(...ids) as SegmentIndex[];
}

export function referencedBlocks(store: Store, rec: ImageRecord): number {
  const chain = chainOf(store.db, rec);
  let n = 0;
  for (const seg of chainSegments(store, chain)) n += countSlots(resolveFrozen(store, chain, 0, seg));
  return n;
}

export interface StoreStats {
  images: number;
  /** Sum of virtual sizes: what raw (non-sparse) copies would take. */
  logicalBytes: number;
  /** Sum of referenced data: what sparse copies of every image would take. */
  referencedBytes: number;
  /** Sum of each layer's own data: what separate qcow2-style chains take at 4 KiB granularity. */
  ownBytes: number;
  /** Distinct blocks actually stored. */
  storedBytes: number;
  savings: { zeroBytes: number; layeringBytes: number; dedupBytes: number };
}

export function storeStats(store: Store): StoreStats {
  const images = listImages(store.db).filter((i) => !i.name.startsWith('.'));
  let logical = 0;
  let referenced = 0;
  let own = 0;
  for (const img of images) {
    logical += img.virtualSize;
    referenced += referencedBlocks(store, img) * BLOCK_SIZE;
    own += img.ownBlocks * BLOCK_SIZE;
  }
  const stored = (store.db.prepare('SELECT count(*) FROM blocks').pluck().get() as number) * BLOCK_SIZE;
  return {
    images: images.length,
    logicalBytes: logical,
    referencedBytes: referenced,
    ownBytes: own,
    storedBytes: stored,
    savings: { zeroBytes: logical - referenced, layeringBytes: referenced - own, dedupBytes: own - stored },
  };
}
