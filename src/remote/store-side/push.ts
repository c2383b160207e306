/**
 * strata push: a frozen image and its chain into a remote, uploading only
 * the blocks the bucket lacks.
 *
 * 1. Read the bucket's indexes (only those not cached yet).
 * 2. Walk each layer of the chain, base first (layers.ts): every data block
 *    is named by its digest; one the bucket's indexes do not name, and this
 *    push has not packed yet, goes into a pack (packer.ts).
 * 3. Once every pack is complete: the index naming their blocks.
 * 4. Then the layer objects the bucket lacks, then the manifest.
 *
 * Ordering: each step starts only after the uploads of the one before have
 * completed, so whoever finds a manifest finds everything it needs. A push
 * killed part-way leaves packs (and perhaps an index) no manifest reaches:
 * waste for `remote gc`, never harm. Pushes need no lock among themselves
 * (every name is content-derived); each holds a shared lock so that
 * `remote gc` does not run beside it (locks.ts).
 */
import { StrataError } from '../../errors.js';
import { faultDelay, faultPoint, readTx, BLOCK_SIZE, isFrozen, MAX_CHAIN_DEPTH, type ImageRecord, type OnProgress } from '../../store/core/index.js';
import { chainOf } from '../../store/images/index.js';
import type { CodecSpec } from '../../store/blocks/index.js';
import type { Store } from '../../store/core/index.js';
import { bytesText } from '../../units.js';
import { openImage } from '../../image/image.js';
import { dataBlocks, decodeLayer, layerBytesLimit, MAX_LAYER_BYTES } from '../objects/layer-file.js';
import { encodeIndexes } from '../objects/index-file.js';
import { walkLayer, type LocalLayer } from './layers.js';
import { sha256Hex } from '../objects/layout.js';
import { encodeManifest, MANIFEST_FORMAT, type Manifest } from '../objects/manifest.js';
import { fetchOwnBlocks } from './lazy.js';
import { lockForPush } from '../upkeep/locks.js';
import { makePacker, type PackBlock } from '../objects/packer.js';
import { listRemoteImages, readManifest, syncIndexes, thisHost, type Remote } from '../remote.js';

export interface PushOptions {
  packBytes?: number;
  compress?: CodecSpec | null;
  /** Bytes of the chain's data walked so far, of all of it. */
  onProgress?: OnProgress;
}

export interface PushResult {
  image: string;
  remote: string;
  manifest: string;
  layers: { name: string; layer: string; uploaded: boolean }[];
  /** Data blocks in the chain's own maps. */
  blocks: number;
  /** Of those, blocks uploaded now (the rest the bucket had, or appeared twice in the chain). */
  newBlocks: number;
  /** Of `blocks`, those an index of the bucket named already (so not uploaded). */
  inBucketBlocks: number;
  /** Of `blocks`, repeats of a block met earlier in this push (uploaded once). */
  repeatedBlocks: number;
  /** The bucket's newest manifest of the image already named this very chain: kept, none written (`docker push`'s "already exists"). */
  manifestExisted: boolean;
  packs: number;
  /** Bytes of packs uploaded (compressed fragments and trailers). */
  uploadedBytes: number;
  indexesRead: number;
}

export async function pushImage(store: Store, remote: Remote, name: string, opts: PushOptions = {}): Promise<PushResult> {
  // A read lease for the whole push: no image of the chain can be removed (so no slot it names
  // freed and reused) while its blocks are read.
  const img = openImage(store, name);
  try {
    const rec = img.record;
    if (!isFrozen(rec)) {
      throw new StrataError('E_BAD_INPUT', `image ${name} is a writable leaf: snapshot or freeze it first (strata snapshot ${name}), then push the frozen image`, { image: name });
    }
    const chain = readTx(store, () => chainOf(store, rec));
    // Made by `remote add --create` only: a push never creates a bucket a typo named.
    await remote.bucket.check();
    // Shared with other pushes; keeps `remote gc` from collecting what this push counts on or has half-written.
    const lock = await lockForPush(remote);
    try {
      return await pushChain(store, remote, rec, chain, opts);
    } finally {
      await lock.release();
    }
  } finally {
    img.close();
  }
}

/**
 * The bucket's copy of a local layer, when this store knows the two are
 * equal (pulled or lazily cloned from it, or pushed before) and every block
 * it names is in a pack an index names: then nothing of it is read or
 * uploaded again. That is also how a snapshot of a lazy clone is pushed to
 * its own remote with blocks never fetched. Anything less (a layer gc
 * deleted, blocks it collected) and the layer is walked as any other.
 */
async function layerInBucket(remote: Remote, rec: ImageRecord): Promise<LocalLayer | undefined> {
  const id = remote.cache.layerOf(rec.id, rec.generation);
  if (id === undefined) return undefined;
  let bytes: Buffer;
  try {
    bytes = await remote.bucket.get(remote.keys.layer(id), layerBytesLimit(rec.virtualSize));
  } catch (e) {
    // Gone, or larger than this layer can be (so not the object of that name): walk the layer as any other.
    if (e instanceof StrataError && (e.code === 'E_NOT_FOUND' || e.code === 'E_CORRUPT')) return undefined;
    throw e;
  }
  if (sha256Hex(bytes) !== id) return undefined;
  const map = decodeLayer(bytes, id);
  for (let at = 0; at < map.digests.length; at += 32) if (!remote.cache.place(map.digests.subarray(at, at + 32))) return undefined;
  return { id, bytes, map };
}

const tooLargeLayer = (r: ImageRecord) =>
  new StrataError('E_UNSUPPORTED', `${r.name} holds ${r.ownBlocks} blocks of its own: its remote layer would be over the ${bytesText(MAX_LAYER_BYTES)} a pull reads`, { image: r.name });

async function pushChain(store: Store, remote: Remote, rec: ImageRecord, chain: ImageRecord[], opts: PushOptions): Promise<PushResult> {
  // Nothing is pushed that a pull would refuse (manifest.ts, layer-file.ts): said before any upload.
  if (chain.length > MAX_CHAIN_DEPTH) throw new StrataError('E_UNSUPPORTED', `${rec.name} is ${chain.length} images deep; a remote image is at most ${MAX_CHAIN_DEPTH} (strata flatten first)`, { image: rec.name });
  const huge = chain.find((r) => 32 * r.ownBlocks > MAX_LAYER_BYTES);
  if (huge) throw tooLargeLayer(huge);
  const baseFirst = chain.map((_, i) => chain.slice(i)).reverse();
  const total = chain.reduce((n, r) => n + r.ownBlocks, 0) * BLOCK_SIZE;
  let done = 0;
  const indexesRead = await syncIndexes(remote);

  const packer = makePacker(remote, { packBytes: opts.packBytes, compress: opts.compress });
  const queued = new Set<string>();
  let blocks = 0;
  let inBucket = 0;
  let repeated = 0;
  const layers: { rec: ImageRecord; layer: LocalLayer }[] = [];
  for (const sub of baseFirst) {
    const known = await layerInBucket(remote, sub[0]);
    if (known) {
      const n = dataBlocks(known.map);
      blocks += n;
      inBucket += n;
      layers.push({ rec: sub[0], layer: known });
      done += sub[0].ownBlocks * BLOCK_SIZE;
      continue;
    }
    // Blocks still in a remote pack (a lazy clone's layer, pushed elsewhere) are fetched first:
    // the walk reads every block. The push's lease keeps them from eviction until it is done.
    await fetchOwnBlocks(store, sub[0]);
    const walk = walkLayer(store, sub);
    for (;;) {
      const r = walk.next();
      if (r.done) {
        // Its runs count too: found only now, before any layer or manifest names the packs.
        if (r.value.bytes.length > MAX_LAYER_BYTES) throw tooLargeLayer(sub[0]);
        layers.push({ rec: sub[0], layer: r.value });
        break;
      }
      const fresh: PackBlock[] = [];
      const placed = remote.cache.placed(r.value.map((b) => b.digest));
      for (const b of r.value) {
        blocks++;
        const hex = b.digest.toString('hex');
        if (queued.has(hex)) repeated++;
        else if (placed.has(hex)) inBucket++;
        if (queued.has(hex) || placed.has(hex)) continue;
        queued.add(hex);
        fresh.push(b);
      }
      if (fresh.length > 0) await packer.add(fresh);
      done += r.value.length * BLOCK_SIZE;
      opts.onProgress?.(Math.min(done, total), total);
    }
  }
  const places = await packer.finish();
  faultPoint('push.after-packs');

  // Packs complete: now the indexes that name them (one per MAX_INDEX_ENTRIES blocks, the most a reader takes).
  for (const { bytes, places: part } of encodeIndexes(places)) {
    const id = sha256Hex(bytes);
    await remote.bucket.put(remote.keys.index(id), bytes);
    remote.cache.addIndex(id, part);
  }
  faultPoint('push.after-index');

  // Index complete: the layers (one two hosts pushed is the same object: skip it if there).
  const uploaded: boolean[] = [];
  for (const { layer } of layers) {
    const key = remote.keys.layer(layer.id);
    const there = await remote.bucket.has(key);
    if (!there) await remote.bucket.put(key, layer.bytes);
    uploaded.push(!there);
  }
  for (const { rec: r, layer } of layers) remote.cache.setLayer(r.id, r.generation, layer.id);
  faultPoint('push.after-layers');

  // Layers complete: the manifest, which makes the image visible.
  const chainOut = layers.map(({ rec: r, layer }) => ({ layer: layer.id, name: r.name, kind: r.kind, virtualSize: r.virtualSize, labels: r.labels, blocks: dataBlocks(layer.map) }));
  // Pushed before, unchanged: that manifest (and its id, which scripts and lazy clones name) stays the newest.
  const existing = await sameNewestManifest(remote, rec.name, chainOut);
  let manifestId = existing;
  if (manifestId === undefined) {
    const m = encodeManifest({ format: MANIFEST_FORMAT, image: rec.name, pushedAt: new Date().toISOString(), host: thisHost(), chain: chainOut });
    faultDelay('push.before-manifest');
    await remote.bucket.put(remote.keys.manifest(rec.name, m.id), m.bytes);
    manifestId = m.id;
  }

  return {
    image: rec.name,
    remote: remote.config.name,
    manifest: manifestId,
    manifestExisted: existing !== undefined,
    inBucketBlocks: inBucket,
    repeatedBlocks: repeated,
    layers: layers.map(({ rec: r, layer }, i) => ({ name: r.name, layer: layer.id, uploaded: uploaded[i] })),
    blocks,
    newBlocks: packer.stats.blocks,
    packs: packer.stats.packs,
    uploadedBytes: packer.stats.packedBytes,
    indexesRead,
  };
}

/** The id of the image's newest readable manifest in the bucket when it names exactly `chain`; undefined otherwise. */
async function sameNewestManifest(remote: Remote, image: string, chain: Manifest['chain']): Promise<string | undefined> {
  const [listed] = await listRemoteImages(remote, image);
  const newest = listed?.manifests[0];
  if (!newest) return undefined;
  const m = await readManifest(remote, image, newest.id);
  const key = (c: Manifest['chain']) => JSON.stringify(c.map((l) => [l.layer, l.name, l.kind, l.virtualSize, l.blocks, Object.entries(l.labels).sort()]));
  return key(m.chain) === key(chain) ? newest.id : undefined;
}
