/**
 * strata pull: an image and its chain from a remote into this store,
 * fetching only the blocks this store lacks.
 *
 * For each layer of the manifest's chain, base first:
 * - a local image already equal to it (same layer id, same parent) is used
 *   as it is: known from the cache, or found by name and compared;
 * - else the layer is built as an import (formats/import.ts: under a hidden
 *   name, its real name in the last transaction, so a killed pull leaves
 *   whole layers or nothing): each data block is looked for locally by its
 *   hint in the dedup index and confirmed by digest, else fetched
 *   (fetch.ts: coalesced ranged GETs, each block checked against its
 *   digest), then written through the image like any write, so the store's
 *   single dedup choke point (placement.ts) decides where it goes.
 */
import { StrataError, remoteMissing } from '../errors.js';
import { faultPoint, BLOCK_SIZE, isFrozen, type ImageRecord, type OnProgress, type SlotNumber } from '../store/core/index.js';
import { chainOf, findImage, getImageById } from '../store/images/index.js';
import type { Store } from '../store/core/index.js';
import { indexLookup, slotReader } from '../store/slots/index.js';
import { bytesHere, isRemoteMiss } from '../store/blocks/index.js';
import { beginImport } from '../formats/import.js';
import { openImage } from '../image/image.js';
import { remoteUrl } from './config.js';
import { lazyRemoteOf } from './cache-limit.js';
import { fetchBlocks, type FetchOptions } from './fetch.js';
import { adoptLazyLayer } from './lazy.js';
import type { BlockPlace } from './index-file.js';
import { RUN_DATA, type LayerMap } from './layer-file.js';
import { localLayer } from './layers.js';
import { hiddenBlocks } from './zero-runs.js';
import { sha256 } from './layout.js';
import type { ManifestLayer } from './manifest.js';
import { findManifest, readLayer, syncIndexes, type Remote } from './remote.js';

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
/** Local candidates tried per hint. */
const CANDIDATES = 4;

/** A local frozen image equal to `ml` over `parent`, if there is one. */
export function localEqual(store: Store, remote: Remote, ml: ManifestLayer, parent: ImageRecord | null): ImageRecord | undefined {
  const fits = (r: ImageRecord) => isFrozen(r) && r.parentId === (parent?.id ?? null) && r.virtualSize === ml.virtualSize;
  for (const { imageId, generation } of remote.cache.imagesWithLayer(ml.layer)) {
    const r = store.db.prepare('SELECT 1 FROM images WHERE id = ? AND generation = ?').get(imageId, generation) ? getImageById(store.db, imageId as ImageRecord['id']) : undefined;
    if (r && fits(r)) return r;
  }
  const named = findImage(store.db, ml.name);
  if (!named) return undefined;
  const clash = (why: string) =>
    new StrataError('E_EXISTS', `this store has an image named ${ml.name} that ${why}; rename it (strata rename) to pull ${remote.config.name}'s`, { image: ml.name });
  if (!fits(named)) throw clash(`is not the same ${parent ? `layer over ${parent.name}` : 'base'}`);
  // Its blocks still remote are fetched from the remote it was cloned from: never reused for another's image.
  const from = lazyRemoteOf(named);
  if (from !== undefined && from !== remote.config.name) throw clash(`is a layer cloned lazily from remote ${from}`);
  const img = openImage(store, named.name);
  try {
    const mine = localLayer(store, chainOf(store.db, img.record));
    if (mine.id !== ml.layer) throw clash('holds other data');
    remote.cache.setLayer(named.id, named.generation, mine.id);
    return named;
  } finally {
    img.close();
  }
}

/** This store's copy of a block, if its dedup index finds one whose bytes have this digest. */
function localBlocks(store: Store, places: readonly BlockPlace[]): (Buffer | undefined)[] {
  const cands = indexLookup(store.db, places.map((p) => p.hint), CANDIDATES);
  const slots = slotReader(store.db);
  return places.map((p) => {
    for (const slot of cands.get(p.hint) ?? []) {
      // A block whose bytes are in a remote pack (a lazy clone's, not fetched or evicted) is no copy.
      if (slots.refcount(slot) === 0 || !bytesHere(slots.loc(slot))) continue;
      const b = Buffer.allocUnsafe(BLOCK_SIZE);
      try {
        store.readUnverified(slot as SlotNumber, 1, b, 0); // the digest below is the proof
      } catch (e) {
        if (isRemoteMiss(e)) continue; // evicted since the look above
        throw e;
      }
      // The index is a hint; the digest is proof (and what is read is what gets written).
      if (sha256(b).equals(p.digest)) return b;
    }
    return undefined;
  });
}

async function buildLayer(store: Store, remote: Remote, ml: ManifestLayer, map: LayerMap, parent: ImageRecord | null, source: Record<string, unknown>, tally: PullResult, progress: () => void, opts: PullOptions): Promise<ImageRecord> {
  // Before anything is made: each zero run must hide the parent's data, so writing it costs no more than that data.
  hiddenBlocks(store, parent, map, ml.layer);
  const target = beginImport(store, ml.name, map.virtualSize, { parent: parent?.name, labels: ml.labels, source, snapshotName: true });
  try {
    const img = target.img;
    const writeBlock = (block: number, data: Buffer) => {
      const off = block * BLOCK_SIZE;
      img.write(off, off + BLOCK_SIZE <= map.virtualSize ? data : data.subarray(0, map.virtualSize - off));
    };
    let d = 0; // index into digests
    let batch: { block: number; place: BlockPlace }[] = [];
    const flushBatch = async () => {
      const local = localBlocks(store, batch.map((b) => b.place));
      const missing: BlockPlace[] = [];
      const blockOf = new Map<string, number[]>();
      batch.forEach((b, i) => {
        const have = local[i];
        if (have) {
          writeBlock(b.block, have);
          tally.localBlocks++;
          return;
        }
        const hex = b.place.digest.toString('hex');
        const l = blockOf.get(hex);
        if (l) l.push(b.block);
        else {
          blockOf.set(hex, [b.block]);
          missing.push(b.place);
        }
      });
      const st = await fetchBlocks(remote, missing, (p, data) => {
        for (const block of blockOf.get(p.digest.toString('hex'))!) {
          writeBlock(block, data);
          tally.fetchedBlocks++;
        }
      }, opts.fetch);
      tally.gets += st.gets;
      tally.fetchedBytes += st.bytes;
      tally.blocks += batch.length;
      batch = [];
      progress();
      faultPoint('pull.after-batch');
    };
    for (const run of map.runs) {
      if (run.kind !== RUN_DATA) {
        img.writeZeroes(run.first * BLOCK_SIZE, Math.min(run.count * BLOCK_SIZE, map.virtualSize - run.first * BLOCK_SIZE));
        continue;
      }
      for (let k = 0; k < run.count; k++, d++) {
        const digest = map.digests.subarray(32 * d, 32 * d + 32);
        const place = remote.cache.place(Buffer.from(digest));
        if (!place) throw remoteMissing(`remote ${remote.config.name}: block ${digest.toString('hex')} of layer ${ml.layer} is in no index`, { layer: ml.layer });
        batch.push({ block: run.first + k, place });
        if (batch.length >= BATCH) await flushBatch();
      }
    }
    if (batch.length > 0) await flushBatch();
  } catch (e) {
    target.abandon();
    throw e;
  }
  return target.finish();
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
    const rec = await buildLayer(store, remote, ml, map, parent, source, tally, () => opts.onProgress?.(Math.min(total, (skipped + tally.blocks) * BLOCK_SIZE), total), opts);
    remote.cache.setLayer(rec.id, rec.generation, ml.layer);
    tally.layers.push({ name: rec.name, layer: ml.layer, reused: false });
    parent = rec;
    faultPoint('pull.after-layer');
  }
  return tally;
}
