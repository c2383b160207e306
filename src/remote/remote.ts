/**
 * An open remote: its configuration, bucket, key names and local cache, and
 * the reads every command starts with (the indexes, the manifests).
 *
 * Every object is read with the size limit of its kind (manifest.ts,
 * layer-file.ts, index-file.ts), refused by its listed size before a GET
 * where the listing gave one, checked against its name, then decoded. One
 * bad index or manifest is skipped and noted in `skipped` (the CLI warns
 * with it), so it fails only the image that needs it, never every pull or
 * listing of the bucket.
 */
import os from 'node:os';
import { StrataError, bucketCorrupt, isStrataError, remoteMissing } from '../errors.js';
import { loadRemote, type RemoteConfig } from './config.js';
import { openRemoteCache, type RemoteCache } from './cache.js';
import { decodeIndex, MAX_INDEX_BYTES, type BlockPlace } from './objects/index-file.js';
import { decodeLayer, layerBytesLimit, MAX_LAYER_BYTES, type LayerMap } from './objects/layer-file.js';
import { HEX_ID, INDEX_DIR, LAYER_DIR, MANIFEST_DIR, PACK_DIR, keysFor, sha256Hex, type Keys } from './objects/layout.js';
import { decodeManifest, MAX_MANIFEST_BYTES, type Manifest } from './objects/manifest.js';
import { mapLimit } from './pool.js';
import { objectTooLarge, type Bucket } from './bucket.js';
import { openDirBucket } from './dir-bucket.js';
import { openBucket, type BucketOptions } from './s3.js';

/** An object a command passed over because it is damaged or hostile. */
export interface SkippedObject {
  object: 'manifest' | 'index';
  /** The id (for a manifest: image/id). */
  id: string;
  key: string;
  code: string;
  message: string;
}

export interface Remote {
  readonly config: RemoteConfig;
  readonly bucket: Bucket;
  readonly keys: Keys;
  readonly cache: RemoteCache;
  /** What this remote's reads have skipped so far, for the command to report. */
  readonly skipped: SkippedObject[];
  close(): void;
}

/** Tuning for tests and benches: anything of BucketOptions but where the bucket is (S3 only: a directory has no knobs). */
export type RemoteTuning = Omit<BucketOptions, 'bucket' | 'endpoint' | 'region' | 'pathStyle'>;

export function openRemote(storeDir: string, name: string, tuning: RemoteTuning = {}): Remote {
  const config = loadRemote(storeDir, name);
  const bucket = config.dir !== undefined ? openDirBucket(config.dir) : openBucket({ ...tuning, bucket: config.bucket, endpoint: config.endpoint, region: config.region, pathStyle: config.pathStyle });
  const cache = openRemoteCache(storeDir, name);
  return {
    config,
    bucket,
    keys: keysFor(config.prefix),
    cache,
    skipped: [],
    close() {
      bucket.close();
      cache.close();
    },
  };
}

/** Objects fetched at once when reading many small ones (indexes, manifests). */
const SMALL_GETS = 8;

const DIRS = { packs: PACK_DIR, indexes: INDEX_DIR, layers: LAYER_DIR } as const;

/** The content-named objects of one of the remote's directories, id and size; keys not ours are skipped. */
export async function listIds(r: Remote, dir: keyof typeof DIRS): Promise<{ id: string; size: number }[]> {
  return (await r.bucket.list(r.keys[dir])).map((o) => ({ id: r.keys.idOf(o.key, DIRS[dir])!, size: o.size })).filter((o) => HEX_ID.test(o.id));
}

/** Every manifest object (`only`: that image's), by image and id, with its listed size. */
export async function listManifests(r: Remote, only?: string): Promise<{ image: string; id: string; size: number }[]> {
  const out: { image: string; id: string; size: number }[] = [];
  for (const o of await r.bucket.list(only === undefined ? r.keys.manifests : r.keys.manifestsOf(only))) {
    const m = /^([^/]+)\/([0-9a-f]{64})\.json$/.exec(r.keys.idOf(o.key, MANIFEST_DIR) ?? '');
    if (m) out.push({ image: m[1], id: m[2], size: o.size });
  }
  return out;
}

/**
 * A content-named object, at most `limit` bytes (refused unread when its
 * listed size is more): an object whose bytes do not hash to its name is
 * damaged, never used.
 */
async function readNamed(r: Remote, what: 'index' | 'layer' | 'manifest', key: string, id: string, limit: number, listed?: number): Promise<Buffer> {
  if (listed !== undefined && listed > limit) throw objectTooLarge(r.bucket.where, key, limit, listed);
  const bytes = await r.bucket.get(key, limit).catch((e: unknown) => {
    throw isStrataError(e, 'E_NOT_FOUND') ? remoteMissing(`remote ${what} ${id} is not in ${r.bucket.where}`, { [what]: id }, e) : e;
  });
  if (sha256Hex(bytes) !== id) throw bucketCorrupt(`remote ${what} ${id} in ${r.bucket.where} does not match its name`, { [what]: id });
  return bytes;
}

/** One index object, checked against its name and decoded. */
export const readIndex = async (r: Remote, id: string, listed?: number): Promise<BlockPlace[]> => decodeIndex(await readNamed(r, 'index', r.keys.index(id), id, MAX_INDEX_BYTES, listed), id);

/** One layer object, checked against its name and decoded; given the size and data blocks its manifest records, checked against those too. */
export async function readLayer(r: Remote, id: string, virtualSize?: number, blocks?: number): Promise<LayerMap> {
  const limit = virtualSize === undefined ? MAX_LAYER_BYTES : layerBytesLimit(virtualSize);
  const map = decodeLayer(await readNamed(r, 'layer', r.keys.layer(id), id, limit), id);
  if (virtualSize !== undefined && map.virtualSize !== virtualSize) throw bucketCorrupt(`remote layer ${id} is ${map.virtualSize} bytes, its manifest says ${virtualSize}`, { layer: id });
  if (blocks !== undefined && map.digests.length / 32 !== blocks) throw bucketCorrupt(`remote layer ${id} holds ${map.digests.length / 32} data blocks, its manifest says ${blocks}`, { layer: id });
  return map;
}

/** Notes a damaged object as skipped; anything else (the bucket cannot be read) is thrown. */
function skip(r: Remote, object: SkippedObject['object'], id: string, key: string, e: unknown): void {
  if (!(e instanceof StrataError && e.code === 'E_CORRUPT')) throw e;
  r.skipped.push({ object, id, key, code: e.code, message: e.message });
}

/**
 * Brings the cache up to the bucket's indexes: reads those this store has
 * not seen, forgets those `remote gc` has deleted. Returns how many were
 * read. A damaged index is skipped (and read again next time): only the
 * blocks it alone names are missing, for whichever image needs them.
 */
export async function syncIndexes(r: Remote): Promise<number> {
  const known = r.cache.knownIndexes();
  const listed = await listIds(r, 'indexes');
  const there = new Set(listed.map((o) => o.id));
  for (const id of known) if (!there.has(id)) r.cache.forgetIndex(id);
  const fresh = listed.filter((o) => !known.has(o.id));
  let read = 0;
  await mapLimit(fresh, SMALL_GETS, async ({ id, size }) => {
    try {
      r.cache.addIndex(id, await readIndex(r, id, size));
      read++;
    } catch (e) {
      if (e instanceof StrataError && e.code === 'E_REMOTE_MISSING') return; // deleted by remote gc since the listing
      skip(r, 'index', id, r.keys.index(id), e);
    }
  });
  return read;
}

export interface RemoteImage {
  name: string;
  /** Manifests of this name, newest first. */
  manifests: { id: string; pushedAt: string; host: string; virtualSize: number; layers: number; blocks: number }[];
}

/** One manifest, checked against its name and image. */
export async function readManifest(r: Remote, image: string, id: string, listed?: number): Promise<Manifest> {
  const bytes = await readNamed(r, 'manifest', r.keys.manifest(image, id), id, MAX_MANIFEST_BYTES, listed);
  const m = decodeManifest(bytes, `${image}/${id}`);
  if (m.image !== image) throw bucketCorrupt(`remote manifest ${image}/${id} names image ${m.image}`, { manifest: id });
  return m;
}

const newestFirst = (a: { pushedAt: string; id: string }, b: { pushedAt: string; id: string }) =>
  a.pushedAt < b.pushedAt ? 1 : a.pushedAt > b.pushedAt ? -1 : a.id < b.id ? -1 : 1;

/** Every image the remote holds (`only`: just that one), with its manifests; damaged manifests are skipped (r.skipped). */
export async function listRemoteImages(r: Remote, only?: string): Promise<RemoteImage[]> {
  const read = await mapLimit(await listManifests(r, only), SMALL_GETS, async (f) => {
    try {
      return { ...f, m: await readManifest(r, f.image, f.id, f.size) };
    } catch (e) {
      if (e instanceof StrataError && e.code === 'E_REMOTE_MISSING') return undefined; // deleted since the listing
      skip(r, 'manifest', `${f.image}/${f.id}`, r.keys.manifest(f.image, f.id), e);
      return undefined;
    }
  });
  const byName = new Map<string, RemoteImage>();
  for (const got of read) {
    if (!got) continue;
    const { image, id, m } = got;
    let img = byName.get(image);
    if (!img) byName.set(image, (img = { name: image, manifests: [] }));
    const top = m.chain[m.chain.length - 1];
    img.manifests.push({ id, pushedAt: m.pushedAt, host: m.host, virtualSize: top.virtualSize, layers: m.chain.length, blocks: m.chain.reduce((n, l) => n + l.blocks, 0) });
  }
  const out = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const img of out) img.manifests.sort(newestFirst);
  return out;
}

/** The newest manifest of `image` (or the one whose id starts with `id`); with none readable, why the damaged ones are not. */
export async function findManifest(r: Remote, image: string, id?: string): Promise<{ id: string; manifest: Manifest }> {
  const [img] = await listRemoteImages(r, image);
  const pick = img?.manifests.filter((m) => id === undefined || m.id.startsWith(id)) ?? [];
  if (pick.length === 0) {
    const damaged = r.skipped.find((s) => s.object === 'manifest' && s.id.startsWith(`${image}/${id ?? ''}`));
    if (damaged) throw bucketCorrupt(damaged.message, { remote: r.config.name, image, manifest: damaged.id });
    throw new StrataError('E_NOT_FOUND', `remote ${r.config.name} has no image ${image}${id ? `@${id}` : ''}`, { remote: r.config.name, image });
  }
  if (id !== undefined && pick.length > 1) throw new StrataError('E_BAD_INPUT', `${image}@${id} names ${pick.length} manifests; give more of the id`, { image, id });
  return { id: pick[0].id, manifest: await readManifest(r, image, pick[0].id) };
}

export const thisHost = (): string => os.hostname();
