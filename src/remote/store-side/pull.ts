/**
 * strata pull: an image and its chain from a remote into this store,
 * fetching only the blocks this store lacks.
 *
 * For each layer of the manifest's chain, base first:
 * - a local image already equal to it (same layer id, same parent) is used
 *   as it is (chain-match.ts);
 * - else the layer is built as an import (formats/import.ts: under a hidden
 *   name, its real name in the last transaction, so a killed pull leaves
 *   whole layers or nothing). Each data block this store already holds
 *   (local-copies.ts: found by its hint, proven by its digest) is named by
 *   its slot, as a lazy clone names it: its bytes are neither read again
 *   nor written. The others are fetched (fetch.ts: coalesced ranged GETs,
 *   each block checked against its digest) and written through the image
 *   like any write, so the store's single dedup choke point (placement.ts)
 *   decides where they go.
 */
import { remoteMissing } from '../../errors.js';
import { faultPoint, BLOCK_SIZE, type ImageRecord, type OnProgress, type SlotNumber } from '../../store/core/index.js';
import type { Store } from '../../store/core/index.js';
import { beginImport } from '../../formats/import.js';
import type { Image } from '../../image/image.js';
import { localEqual } from './chain-match.js';
import { remoteUrl } from '../config.js';
import { lazyRemoteOf } from './cache-limit.js';
import { fetchBlocks, type FetchOptions } from '../objects/fetch.js';
import { adoptLazyLayer } from './lazy.js';
import type { BlockPlace } from '../objects/index-file.js';
import { RUN_DATA, type LayerMap } from '../objects/layer-file.js';
import { holdCopies, type HeldCopies } from './local-copies.js';
import type { ManifestLayer } from '../objects/manifest.js';
import { nameSlots } from './name-slots.js';
import { hiddenBlocks } from './zero-runs.js';
import { findManifest, readLayer, syncIndexes, type Remote } from '../remote.js';

export interface PullOptions {
  /** A manifest id (or its start): default the newest of the image. */
  manifest?: string;
  fetch?: FetchOptions;
  /** Data blocks of the layers to build, done of all. */
  onProgress?: OnProgress;
}

export interface PullResult {
  image: string;
  remote: string;
  manifest: string;
  layers: { name: string; layer: string; reused: boolean }[];
  /** Data blocks of the layers built. */
  blocks: number;
  /** Of those, found in this store (by hint, confirmed by digest). */
  localBlocks: number;
  fetchedBlocks: number;
  gets: number;
  fetchedBytes: number;
}

/** Blocks looked up and fetched together: 16 MiB of data (STRATA_PULL_BATCH: smaller, for tests). */
const BATCH = Number(process.env.STRATA_PULL_BATCH) || 4096;

/** One layer to build, and what building it adds to. */
export interface LayerJob {
  store: Store;
  remote: Remote;
  /** The manifest's entry for the layer. */
  layer: ManifestLayer;
  /** Its layer object, read and checked against the manifest. */
  map: LayerMap;
  /** The local image it goes over; null for a base. */
  parent: ImageRecord | null;
  /** What the new image records as its source. */
  source: Record<string, unknown>;
  /** The pull's counts, which the build adds to. */
  tally: PullResult;
  /** Called after each batch of blocks. */
  progress: () => void;
  fetch?: FetchOptions;
}

/** A block of the layer, where it goes and where the bucket has it. */
interface Wanted {
  block: number;
  place: BlockPlace;
}

/** Builds one layer as an import: a killed or failed build leaves nothing (formats/import.ts). */
async function buildLayer(job: LayerJob): Promise<ImageRecord> {
  const { store, layer: ml, map, parent } = job;
  // Before anything is made: each zero run must hide the parent's data, so writing it costs no more than that data.
  hiddenBlocks(store, parent, map, ml.layer);
  const target = beginImport(store, ml.name, map.virtualSize, { parent: parent?.name, labels: ml.labels, source: job.source, snapshotName: true });
  let copies: HeldCopies | undefined;
  try {
    copies = holdCopies(store, target.img.record);
    await writeLayer(job, target.img, copies);
  } catch (e) {
    copies?.release();
    target.abandon();
    throw e;
  }
  copies.release();
  return target.finish();
}

/** The layer's blocks into `img`, batch by batch: those this store holds named by slot at the end, the others fetched and written. */
async function writeLayer(job: LayerJob, img: Image, copies: HeldCopies): Promise<void> {
  const { store, remote, layer: ml, map, tally } = job;
  const writeBlock = (block: number, data: Buffer) => {
    const off = block * BLOCK_SIZE;
    img.write(off, off + BLOCK_SIZE <= map.virtualSize ? data : data.subarray(0, map.virtualSize - off));
  };
  /** Fetches blocks and writes them through the image, so placement decides where each goes. */
  const fetchInto = async (list: readonly Wanted[]) => {
    const missing: BlockPlace[] = [];
    const blockOf = new Map<string, number[]>();
    for (const w of list) {
      const hex = w.place.digest.toString('hex');
      const l = blockOf.get(hex);
      if (l) l.push(w.block);
      else {
        blockOf.set(hex, [w.block]);
        missing.push(w.place);
      }
    }
    const st = await fetchBlocks(remote, missing, (p, data) => {
      for (const block of blockOf.get(p.digest.toString('hex'))!) {
        writeBlock(block, data);
        tally.fetchedBlocks++;
      }
    }, job.fetch);
    tally.gets += st.gets;
    tally.fetchedBytes += st.bytes;
  };
  // Blocks this store holds: named by slot once the rest is written (nameHeld), never read and written again.
  const held: Held[] = [];
  let d = 0; // index into digests
  let batch: (Wanted & { d: number })[] = [];
  const flushBatch = async () => {
    const local = copies.find(batch.map((b) => b.place));
    const missing: Wanted[] = [];
    batch.forEach((b, i) => {
      const slot = local[i];
      if (slot === undefined) missing.push(b);
      else held.push({ block: b.block, slot, d: b.d });
    });
    tally.localBlocks += batch.length - missing.length;
    await fetchInto(missing);
    tally.blocks += batch.length;
    batch = [];
    job.progress();
    faultPoint('pull.after-batch');
  };
  for (const run of map.runs) {
    if (run.kind !== RUN_DATA) {
      img.writeZeroes(run.first * BLOCK_SIZE, Math.min(run.count * BLOCK_SIZE, map.virtualSize - run.first * BLOCK_SIZE));
      continue;
    }
    for (let k = 0; k < run.count; k++, d++) {
      batch.push({ block: run.first + k, place: placeOf(remote, map, d, ml), d });
      if (batch.length >= BATCH) await flushBatch();
    }
  }
  if (batch.length > 0) await flushBatch();
  await nameHeld(store, img, copies, held, async (lost) => {
    tally.localBlocks -= lost.length;
    await fetchInto(lost.map((h) => ({ block: h.block, place: placeOf(remote, map, h.d, ml) })));
  });
}

/** A block of the layer this store holds: where it goes, the slot holding it, and its index in the layer's digests. */
interface Held {
  block: number;
  slot: SlotNumber;
  d: number;
}

/**
 * Names the held copies in the image's own map, in one transaction that
 * finds each still a copy (holdCopies' pin keeps what was proven); when
 * some are not (freed or evicted since), nothing is named: those are
 * fetched and written like the others (`refetch`), and the rest named then.
 * The image is flushed first, so the naming edits a map the handle holds
 * no unflushed write over, and the handle writes nothing after it.
 */
async function nameHeld(store: Store, img: Image, copies: HeldCopies, held: Held[], refetch: (lost: Held[]) => Promise<void>): Promise<void> {
  for (let todo = held; todo.length > 0; ) {
    img.flush();
    const lost = store.write((tx) => {
      const gone = copies.lost(tx, todo.map((h) => h.slot));
      if (!gone.some(Boolean)) nameSlots(tx, img.record, todo);
      return gone;
    });
    if (!lost.some(Boolean)) return;
    await refetch(todo.filter((_, i) => lost[i]));
    todo = todo.filter((_, i) => !lost[i]);
  }
}

/** Where the bucket has the layer's `d`th data block. */
function placeOf(remote: Remote, map: LayerMap, d: number, ml: ManifestLayer): BlockPlace {
  const digest = map.digests.subarray(32 * d, 32 * d + 32);
  const place = remote.cache.place(Buffer.from(digest));
  if (!place) throw remoteMissing(`remote ${remote.config.name}: block ${digest.toString('hex')} of layer ${ml.layer} is in no index`, { layer: ml.layer });
  return place;
}
export async function pullImage(store: Store, remote: Remote, image: string, opts: PullOptions = {}): Promise<PullResult> {
  const { id, manifest } = await findManifest(remote, image, opts.manifest);
  await syncIndexes(remote);
  const tally: PullResult = { image, remote: remote.config.name, manifest: id, layers: [], blocks: 0, localBlocks: 0, fetchedBlocks: 0, gets: 0, fetchedBytes: 0 };
  const total = manifest.chain.reduce((n, l) => n + l.blocks, 0) * BLOCK_SIZE;
  let parent: ImageRecord | null = null;
  let skipped = 0;
  for (const ml of manifest.chain) {
    const equal = localEqual(store, remote, ml, parent);
    // A lazy clone's layer: fetched whole and made an ordinary image, as a pull promises.
    const mine = equal && lazyRemoteOf(equal) !== undefined ? await adoptLazyLayer(store, remote, equal, ml.layer) : equal;
    if (mine) {
      tally.layers.push({ name: mine.name, layer: ml.layer, reused: true });
      skipped += ml.blocks;
      opts.onProgress?.(Math.min(total, (skipped + tally.blocks) * BLOCK_SIZE), total);
      parent = mine;
      continue;
    }
    const map = await readLayer(remote, ml.layer, ml.virtualSize, ml.blocks);
    const source = { format: 'remote', remote: remote.config.name, url: remoteUrl(remote.config), image, manifest: id, layer: ml.layer };
    const progress = () => opts.onProgress?.(Math.min(total, (skipped + tally.blocks) * BLOCK_SIZE), total);
    const rec = await buildLayer({ store, remote, layer: ml, map, parent, source, tally, progress, fetch: opts.fetch });
    remote.cache.setLayer(rec.id, rec.generation, ml.layer);
    tally.layers.push({ name: rec.name, layer: ml.layer, reused: false });
    parent = rec;
    faultPoint('pull.after-layer');
  }
  return tally;
}
