/**
 * Lazy clones: `strata clone fleet/IMAGE vm7` makes a local writable leaf
 * over a remote image whose blocks stay in the bucket until first read.
 *
 * Building (lazyClone): each layer of the manifest's chain, base first, is
 * reused when a local frozen image equals it (as pull does), else made a
 * local frozen image in ONE write transaction, its map one map edit:
 * a data block whose digest this store already has (found by hint in the
 * dedup index, confirmed by SHA-256; or, by placeRemote, a slot already
 * standing for that digest in remote_locs for this same remote, never
 * another's) names that slot; any other gets a fresh slot whose location is REMOTE
 * (store/remote-locs.ts: remote, pack, offset, length, codec, digest), its
 * hash the pusher's hint, nothing written. Then a leaf is cloned over the
 * top layer. No block is fetched, and a clone of remote R only ever
 * fetches from R: a block still remote is shared between clones of one
 * remote, never across remotes (bytes once here and verified are shared
 * with anyone, as any local block).
 *
 * Reading (LazyFetcher): the image core is synchronous and never fetches
 * (a REMOTE block read there is E_IO, never zeros); async readers (the NBD
 * server, export) first ask the fetcher to make the slots a range names
 * local: it reads their places, fetches them with coalesced ranged GETs
 * (fetch.ts: each block decoded and checked against its digest), and
 * installs them (store/remote-locs.ts installFetched: own slot written and
 * synced, then the location moves to [0, 0]). A GET that fails after the
 * S3 client's retries is E_IO for that read only; the next read tries again.
 * Each batch is noted in the remote's cache (when fetched) and may take the
 * cache over its limit, which evicts idle blocks (cache-limit.ts).
 *
 * The bucket's record of this store's clones (dependents.ts): written
 * before a clone makes its first layer, narrowed to what the clone needs
 * after it; a fetcher brings it up to date when its readers let go (trim),
 * so a clone whose blocks are all here stops holding its origin.
 */
import { StrataError, bucketCorrupt, isStrataError, remoteMissing } from '../../errors.js';
import { placeRemote, type RemoteBlock } from '../../store/slots/index.js';
import { editMap, getImage, insertImage } from '../../store/images/index.js';
import { remoteSlotsOf, installFetched, remotePlacesOf, type RemotePlace } from '../../store/blocks/index.js';
import { hasRemoteBlocks } from '../../store/upkeep/index.js';
import type { Store } from '../../store/core/index.js';
import { INHERIT, SEGMENT_ENTRIES, ZERO, slotEntry, type ImageName, type ImageRecord, type MapEntry, type SlotNumber } from '../../store/core/index.js';
import { cloneImage, removeImages } from '../../image/lifecycle.js';
import { frozenKind } from '../../image/lifecycle.js';
import type { Logger } from '../../log.js';
import { adoptLayer, cacheLimiter, LAZY_FORMAT, ownSlotsOf } from './cache-limit.js';
import { remoteUrl } from '../config.js';
import { recordCloneIntent, syncDependentsAfter } from '../upkeep/dependents.js';
import { fetchBlocks, type FetchOptions, type FetchStats } from '../objects/fetch.js';
import type { BlockPlace } from '../objects/index-file.js';
import { RUN_DATA, type LayerMap } from '../objects/layer-file.js';
import type { ManifestLayer } from '../objects/manifest.js';
import { localEqual } from './chain-match.js';
import { localSlotOf } from './local-copies.js';
import { hiddenBlocks } from './zero-runs.js';
import { findManifest, readLayer, openRemote, syncIndexes, type Remote } from '../remote.js';
import { openImage, type Image } from '../../image/image.js';

export interface LazyCloneResult {
  image: string;
  remote: string;
  manifest: string;
  leaf: string;
  layers: { name: string; layer: string; reused: boolean }[];
  /** Data blocks of the layers made. */
  blocks: number;
  /** Of those, already in this store (by digest). */
  localBlocks: number;
  /** Distinct blocks left in the bucket, to fetch on first read. */
  remoteBlocks: number;
  /** Why the bucket does not record this clone as depending on the image (it could not be written to: read-only access), if so. */
  unrecorded?: string;
}

/** One layer as a local frozen image whose new blocks stay remote. One write transaction. */
function buildLazyLayer(store: Store, remote: Remote, ml: ManifestLayer, map: LayerMap, parent: ImageRecord | null, source: Record<string, unknown>, tally: LazyCloneResult): ImageRecord {
  // Candidates found outside the transaction (reads); confirmed inside it by refcount and hash.
  const hidden = hiddenBlocks(store, parent, map, ml.layer);
  const places: BlockPlace[] = [];
  let d = 0;
  for (const run of map.runs) {
    if (run.kind !== RUN_DATA) continue;
    for (let k = 0; k < run.count; k++, d++) {
      const digest = Buffer.from(map.digests.subarray(32 * d, 32 * d + 32));
      const place = remote.cache.place(digest);
      if (!place) throw remoteMissing(`remote ${remote.config.name}: block ${digest.toString('hex')} of layer ${ml.layer} is in no index`, { layer: ml.layer });
      places.push(place);
    }
  }
  return store.write((tx) => {
    const rec = insertImage(tx, { name: ml.name as ImageName, kind: frozenKind(parent?.id ?? null), parentId: parent?.id ?? null, virtualSize: map.virtualSize, labels: ml.labels, source });
    const bySha = new Map<string, MapEntry>();
    const far: RemoteBlock[] = [];
    for (const p of places) {
      const hex = p.digest.toString('hex');
      if (bySha.has(hex)) continue;
      // A local copy by hint, confirmed by digest (read inside this transaction, so it stays live).
      const slot = localSlotOf(store, p);
      if (slot !== undefined) {
        bySha.set(hex, slotEntry(slot as SlotNumber));
        tally.localBlocks++;
        continue;
      }
      bySha.set(hex, INHERIT); // placed below, with the others still remote
      far.push({ place: { remote: remote.config.name, pack: p.pack, offset: p.offset, length: p.length, codec: p.codec, digest: p.digest }, hint: p.hint });
    }
    const placed = placeRemote(store, far);
    far.forEach((b, k) => bySha.set(b.place.digest.toString('hex'), placed.entries[k]));
    tally.remoteBlocks += placed.fresh.size;
    // Data runs one entry per digest the object holds; zero runs only where the parent has data (zero-runs.ts).
    const edit = editMap(tx, rec);
    let i = 0;
    for (const run of map.runs) {
      if (run.kind !== RUN_DATA) continue;
      for (let k = 0; k < run.count; k++) edit.set(run.first + k, bySha.get(places[i++].digest.toString('hex'))!);
    }
    for (const [seg, offsets] of hidden) for (const o of offsets) edit.set(seg * SEGMENT_ENTRIES + o, ZERO);
    edit.commit({ placed });
    tally.blocks += places.length;
    return getImage(tx, rec.name);
  });
}

export async function lazyClone(store: Store, remote: Remote, image: string, leaf: string, opts: { manifest?: string } = {}): Promise<LazyCloneResult> {
  const { id, manifest } = await findManifest(remote, image, opts.manifest);
  // The record first: a host deleting the image from now on sees this clone. Then the manifest once
  // more: a delete that listed the records before this one was written has removed it by now.
  let unrecorded: string | undefined;
  try {
    await recordCloneIntent(store, remote, image, id, manifest.chain.map((l) => l.layer), leaf);
  } catch (e) {
    // A bucket this host may only read (a published image): the clone works, unprotected, and says so.
    if (!isStrataError(e, 'E_IO')) throw e;
    unrecorded = e.message;
  }
  if (!(await remote.bucket.has(remote.keys.manifest(image, id)))) {
    await syncDependentsAfter(store, remote);
    throw remoteMissing(`remote ${remote.config.name} has no image ${image}@${id.slice(0, 12)} any more (deleted meanwhile)`, { remote: remote.config.name, image });
  }
  await syncIndexes(remote);
  const tally: LazyCloneResult = { image, remote: remote.config.name, manifest: id, leaf, layers: [], blocks: 0, localBlocks: 0, remoteBlocks: 0, ...(unrecorded ? { unrecorded } : {}) };
  let parent: ImageRecord | null = null;
  const made: ImageRecord[] = [];
  try {
    for (const ml of manifest.chain) {
      const mine = localEqual(store, remote, ml, parent);
      if (mine) {
        tally.layers.push({ name: mine.name, layer: ml.layer, reused: true });
        parent = mine;
        continue;
      }
      const map = await readLayer(remote, ml.layer, ml.virtualSize, ml.blocks);
      const source = { format: LAZY_FORMAT, remote: remote.config.name, url: remoteUrl(remote.config), image, manifest: id, layer: ml.layer };
      const rec = buildLazyLayer(store, remote, ml, map, parent, source, tally);
      made.push(rec);
      remote.cache.setLayer(rec.id, rec.generation, ml.layer);
      tally.layers.push({ name: rec.name, layer: ml.layer, reused: false });
      parent = rec;
    }
    if (!parent) throw bucketCorrupt(`remote manifest ${id} has no layers`);
    cloneImage(store, parent.name, [leaf]);
  } catch (e) {
    // A clone is one leaf or nothing: layers made for it before a later one failed (a layer that is
    // not canonical over its parent, a bucket gone) hold no data yet and go with it.
    if (made.length > 0) {
      try {
        removeImages(store, made.map((r) => r.name).reverse());
      } catch {
        // Taken meanwhile (a clone over one of them): kept, and the first error is what the user needs.
      }
    }
    await syncDependentsAfter(store, remote);
    throw e;
  }
  await syncDependentsAfter(store, remote);
  return tally;
}

/**
 * Makes the slots reads are about to touch local, fetching what is still
 * remote. One per process; remotes are opened on first need, by the name
 * recorded in each block's place.
 */
export class LazyFetcher {
  readonly stats: FetchStats = { gets: 0, bytes: 0, blocks: 0 };
  private readonly remotes = new Map<string, Remote>();
  /** Per remote: keeps its cache under its limit after each batch. */
  private readonly limits = new Map<string, (fetched: number, released?: boolean) => Promise<unknown>>();
  /** Remotes this fetcher installed blocks from since their dependents records were last brought up to date. */
  private readonly fetchedFrom = new Set<string>();
  constructor(
    private readonly store: Store,
    private readonly open: (name: string) => Remote,
    private readonly opts: FetchOptions & { log?: Logger } = {},
  ) {}

  private limitOf(name: string, r: Remote): (fetched: number, released?: boolean) => Promise<unknown> {
    let l = this.limits.get(name);
    if (!l) this.limits.set(name, (l = cacheLimiter(this.store, r, this.opts.log)));
    return l;
  }

  /** Brings each remote this fetcher used under its limit, where it is over (after a reader let go). */
  async trim(): Promise<void> {
    for (const [name, r] of this.remotes) await this.limitOf(name, r)(0, true);
    await this.syncRecords();
  }

  /** Brings the dependents records of each remote this fetcher fetched from up to date (a clone fully here no longer holds its origin). */
  async syncRecords(): Promise<void> {
    for (const name of this.fetchedFrom) {
      this.fetchedFrom.delete(name);
      await syncDependentsAfter(this.store, this.remotes.get(name)!, (msg) => this.opts.log?.warn({ remote: name }, msg));
    }
  }

  /** Fetches and installs those of `slots` that are still remote. E_IO when the bucket cannot be read. */
  async ensure(slots: Iterable<number>): Promise<number> {
    const far = remoteSlotsOf(this.store, slots);
    if (far.length === 0) return 0;
    const places = remotePlacesOf(this.store, far);
    const byRemote = new Map<string, [number, RemotePlace][]>();
    for (const [slot, p] of places) {
      let l = byRemote.get(p.remote);
      if (!l) byRemote.set(p.remote, (l = []));
      l.push([slot, p]);
    }
    let moved = 0;
    for (const [name, list] of byRemote) {
      let r = this.remotes.get(name);
      if (!r) this.remotes.set(name, (r = this.open(name)));
      const slotsOf = new Map<string, number[]>();
      const want: BlockPlace[] = [];
      for (const [slot, p] of list) {
        const hex = p.digest.toString('hex');
        const l = slotsOf.get(hex);
        if (l) l.push(slot);
        else {
          slotsOf.set(hex, [slot]);
          want.push({ digest: p.digest, pack: p.pack, offset: p.offset, length: p.length, codec: p.codec, hint: 0 });
        }
      }
      const got: { slot: number; digest: Buffer; data: Uint8Array }[] = [];
      let st: FetchStats;
      try {
        st = await fetchBlocks(r, want, (p, data) => {
          for (const slot of slotsOf.get(p.digest.toString('hex'))!) got.push({ slot, digest: p.digest, data: Buffer.from(data) });
        }, this.opts);
      } catch (e) {
        if (e instanceof StrataError && e.code === 'E_NOT_FOUND') throw new StrataError('E_IO', `remote ${name}: ${e.message}`, e.data, { cause: e });
        throw e;
      }
      this.stats.gets += st.gets;
      this.stats.bytes += st.bytes;
      this.stats.blocks += st.blocks;
      const n = installFetched(this.store, got);
      r.cache.noteFetched(got.map((g) => g.slot));
      if (n > 0) this.fetchedFrom.add(name);
      moved += n;
      await this.limitOf(name, r)(n);
    }
    return moved;
  }

  close(): void {
    for (const r of this.remotes.values()) r.close();
    this.remotes.clear();
  }
}

/**
 * Before a synchronous whole-range read (strata read, export): fetches what
 * [offset, offset + length) of the open image `img` still has in a remote
 * pack, 64 MiB of address space at a time. The caller reads through the
 * same handle: its lease keeps what was fetched from eviction, and its view
 * is the one the fetch walked (a second open could see another map, with
 * blocks nobody fetched). `done()`, after the image is closed, lets the
 * caches shrink back under their limits.
 */
export async function fetchForRead(store: Store, img: Image, offset = 0, length?: number): Promise<{ stats?: FetchStats; done(): Promise<void> }> {
  if (!hasRemoteBlocks(store)) return { done: async () => {} };
  const fetcher = new LazyFetcher(store, (name) => openRemote(store.dir, name));
  const done = async () => {
    try {
      await fetcher.trim();
    } finally {
      fetcher.close();
    }
  };
  try {
    const end = length === undefined ? img.size : Math.min(img.size, offset + length);
    const STEP = 64 * 1024 * 1024;
    for (let at = offset; at < end; at += STEP) await fetcher.ensure(img.slotsIn(at, Math.min(STEP, end - at)));
    return { stats: fetcher.stats, done };
  } catch (e) {
    fetcher.close();
    throw e;
  }
}

/**
 * Fetches the blocks of `rec`'s own map that are still in a remote pack
 * (push reads every block of each layer it walks). The caller holds the
 * image open, so nothing fetched is evicted before it is read.
 */
export async function fetchOwnBlocks(store: Store, rec: ImageRecord): Promise<FetchStats | undefined> {
  if (!hasRemoteBlocks(store)) return undefined;
  const slots = ownSlotsOf(store, rec);
  const fetcher = new LazyFetcher(store, (name) => openRemote(store.dir, name));
  try {
    const BATCH = 16384;
    for (let i = 0; i < slots.length; i += BATCH) await fetcher.ensure(slots.slice(i, i + BATCH));
    await fetcher.syncRecords();
    return fetcher.stats;
  } finally {
    fetcher.close();
  }
}

/**
 * Makes a lazy layer an ordinary pulled image (`strata pull` of an image
 * this store has cloned lazily): its own blocks are fetched, then its
 * source says 'remote', so the cache limit no longer counts them and
 * nothing evicts them: they are local data now, as after any pull.
 */
export async function adoptLazyLayer(store: Store, remote: Remote, rec: ImageRecord, layer: string): Promise<ImageRecord> {
  const img = openImage(store, rec.name); // held: nothing fetched is evicted before the source changes
  try {
    await fetchOwnBlocks(store, rec);
    const adopted = adoptLayer(store, remote, rec, layer);
    if (!adopted) throw new StrataError('E_BUSY', `image ${rec.name} changed while it was being pulled; pull again`, { image: rec.name });
    await syncDependentsAfter(store, remote);
    return adopted;
  } finally {
    img.close();
  }
}
