/**
 * Space accounting from the maps alone (no data is read).
 * - referenced: blocks of stored data an image reads through its whole chain;
 * - own: blocks its own layer maps;
 * - distinct: the store's distinct blocks, 4 KiB each uncompressed;
 * - stored: what they take in the data files (compressed ones by their
 *   container slots), over the whole store.
 * Every command and the page use these names for these figures only.
 *
 * The savings telescope: logical - referenced (zero blocks never stored)
 * + referenced - own (layers and clones share their parents' blocks)
 * + own - distinct (the same 4 KiB block kept once across images)
 * + distinct - stored (blocks packed compressed, in container slots) = logical - stored.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packedCounts, usedSlotCount } from '../store/slots/index.js';
import { compressionText, storeCompression } from '../store/blocks/index.js';
import { chainOf, listVisibleImages, segmentsOf } from '../store/images/index.js';
import { countedRemoteBlocks } from '../store/upkeep/index.js';
import { DB_FILE, type Store, BLOCK_SIZE, SEGMENT_ENTRIES, type ImageRecord, type SegmentIndex } from '../store/core/index.js';
import type { Segment } from '../store/images/index.js';
import { resolveFrozen } from './resolve.js';

export interface BlockTotals {
  /** Distinct blocks the store knows (here, compressed or not, or in a remote pack). */
  distinctBlocks: number;
  /** distinctBlocks × 4 KiB: what they would take uncompressed. */
  distinctBytes: number;
  /** Bytes the blocks kept here take in the data files: blocks as they are, plus containers of compressed ones. */
  storedBytes: number;
  /** Distinct blocks whose bytes are in a remote pack, not here. */
  remoteBytes: number;
}

/** The store's block figures, the one place they are computed (info, stats, the page). Call inside a read transaction for a consistent set. */
export function blockTotals(store: Store): BlockTotals {
  const p = packedCounts(store.db);
  const distinctBlocks = usedSlotCount(store.db) - p.containers;
  const remote = countedRemoteBlocks(store) * BLOCK_SIZE;
  return {
    distinctBlocks,
    distinctBytes: distinctBlocks * BLOCK_SIZE,
    storedBytes: distinctBlocks * BLOCK_SIZE - remote - (p.packedBlocks - p.containers) * BLOCK_SIZE,
    remoteBytes: remote,
  };
}

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

/**
 * Referenced blocks per image id, shared by storeStats and diskUsageOf when a
 * caller runs both in one read transaction (the web page does): each image's
 * chain is then resolved once, not twice. Valid for that snapshot only.
 */
export type ReferencedCache = Map<number, number>;

export function referencedBlocks(store: Store, rec: ImageRecord, cache?: ReferencedCache): number {
  const known = cache?.get(rec.id);
  if (known !== undefined) return known;
  const chain = chainOf(store.db, rec);
  let n = 0;
  for (const seg of chainSegments(store, chain)) n += countSlots(resolveFrozen(store, chain, 0, seg));
  cache?.set(rec.id, n);
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
  /** Distinct blocks, 4 KiB each: what the store would take uncompressed. */
  distinctBytes: number;
  /** Slots actually used: distinct blocks in their own place, plus the containers of compressed ones. */
  storedBytes: number;
  /** Distinct blocks whose bytes are in a remote pack, not here (a lazy clone's: not fetched yet, or evicted). */
  remoteBytes: number;
  savings: { zeroBytes: number; layeringBytes: number; dedupBytes: number; compressionBytes: number };
  /** Blocks stored compressed: how many, their bytes before, their fragments' bytes, the container slots holding them. */
  compression: { setting: string; blocks: number; bytesBefore: number; fragmentBytes: number; bytesAfter: number };
  /** What one qcow2 file per layer would allocate: 64 KiB clusters holding any of the layer's own blocks. */
  qcow2Bytes: number;
  /** The data files as the file system sees them (allocated is what they cost). */
  dataFiles: { files: number; apparentBytes: number; allocatedBytes: number };
  /** strata.db with its WAL. */
  metadataBytes: number;
  ratios: {
    /** stored / logical. */
    storedOfLogical: number;
    /** stored / referenced: what strata keeps of sparse copies. */
    storedOfReferenced: number;
    /** stored / qcow2: what strata keeps of separate qcow2 chains. */
    storedOfQcow2: number;
    /** own / distinct: how many times each stored block is used by the layers' maps. */
    dedup: number;
    /** Of the compressed blocks: bytes before / container bytes after (0 when none is compressed). */
    compression: number;
  };
}

export const QCOW2_CLUSTER = 64 * 1024;
const BLOCKS_PER_CLUSTER = QCOW2_CLUSTER / BLOCK_SIZE;

/** Clusters of `cluster` bytes in which the image's own map holds at least one slot. */
export function ownClusters(store: Store, rec: ImageRecord, cluster = QCOW2_CLUSTER): number {
  const per = cluster / BLOCK_SIZE;
  let n = 0;
  for (const [, s] of segmentsOf(store.db, rec.id)) {
    if (typeof s === 'number') {
      if (s >= 2) n += SEGMENT_ENTRIES / per;
      continue;
    }
    for (let c = 0; c < SEGMENT_ENTRIES; c += per) {
      for (let i = c; i < c + per; i++) {
        if (s[i] >= 2) {
          n++;
          break;
        }
      }
    }
  }
  return n;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

export function storeStats(store: Store, opts: { referenced?: ReferencedCache } = {}): StoreStats {
  // One read snapshot, so the figures add up even while others write.
  const maps = store.db.transaction(() => {
    const images = listVisibleImages(store.db);
    let logical = 0;
    let referenced = 0;
    let own = 0;
    let clusters = 0;
    for (const img of images) {
      logical += img.virtualSize;
      referenced += referencedBlocks(store, img, opts.referenced) * BLOCK_SIZE;
      own += img.ownBlocks * BLOCK_SIZE;
      clusters += ownClusters(store, img);
    }
    const p = packedCounts(store.db);
    const { distinctBytes: distinct, remoteBytes: remote, storedBytes: stored } = blockTotals(store);
    const compression = {
      setting: compressionText(storeCompression(store.db)),
      blocks: p.packedBlocks,
      bytesBefore: p.packedBlocks * BLOCK_SIZE,
      fragmentBytes: p.packedBytes,
      bytesAfter: p.containers * BLOCK_SIZE,
    };
    return { images: images.length, logical, referenced, own, distinct, remote, stored, compression, qcow2: clusters * BLOCKS_PER_CLUSTER * BLOCK_SIZE };
  }).deferred();
  const du = store.blocks.diskUsage();
  const db = path.join(store.dir, DB_FILE);
  return {
    images: maps.images,
    logicalBytes: maps.logical,
    referencedBytes: maps.referenced,
    ownBytes: maps.own,
    distinctBytes: maps.distinct,
    storedBytes: maps.stored,
    remoteBytes: maps.remote,
    savings: {
      zeroBytes: maps.logical - maps.referenced,
      layeringBytes: maps.referenced - maps.own,
      dedupBytes: maps.own - maps.distinct,
      compressionBytes: maps.distinct - maps.remote - maps.stored,
    },
    compression: maps.compression,
    qcow2Bytes: maps.qcow2,
    dataFiles: { files: du.files, apparentBytes: du.apparent, allocatedBytes: du.allocated },
    metadataBytes: fileSize(db) + fileSize(`${db}-wal`),
    ratios: {
      storedOfLogical: ratio(maps.stored, maps.logical),
      storedOfReferenced: ratio(maps.stored, maps.referenced),
      storedOfQcow2: ratio(maps.stored, maps.qcow2),
      dedup: ratio(maps.own, maps.distinct),
      compression: ratio(maps.compression.bytesBefore, maps.compression.bytesAfter),
    },
  };
}
