/**
 * An open remote: its configuration, bucket, key names and local cache, and
 * the reads every command starts with (the indexes, the manifests).
 */
import os from 'node:os';
import { StrataError, corrupt } from '../errors.js';
import { loadRemote, type RemoteConfig } from './config.js';
import { openRemoteCache, type RemoteCache } from './cache.js';
import { decodeIndex, type BlockPlace } from './index-file.js';
import { decodeLayer, type LayerMap } from './layer-file.js';
import { HEX_ID, INDEX_DIR, LAYER_DIR, MANIFEST_DIR, PACK_DIR, keysFor, sha256Hex, type Keys } from './layout.js';
import { decodeManifest, type Manifest } from './manifest.js';
import { mapLimit } from './pool.js';
import { openBucket, type Bucket, type BucketOptions } from './s3.js';

export interface Remote {
  readonly config: RemoteConfig;
  readonly bucket: Bucket;
  readonly keys: Keys;
  readonly cache: RemoteCache;
  close(): void;
}

/** Tuning for tests and benches: anything of BucketOptions but where the bucket is. */
export type RemoteTuning = Omit<BucketOptions, 'bucket' | 'endpoint' | 'region' | 'pathStyle'>;

export function openRemote(storeDir: string, name: string, tuning: RemoteTuning = {}): Remote {
  const config = loadRemote(storeDir, name);
  const bucket = openBucket({ ...tuning, bucket: config.bucket, endpoint: config.endpoint, region: config.region, pathStyle: config.pathStyle });
  const cache = openRemoteCache(storeDir, name);
  return {
    config,
    bucket,
    keys: keysFor(config.prefix),
    cache,
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

/** Every manifest object (`only`: that image's), by image and id. */
export async function listManifests(r: Remote, only?: string): Promise<{ image: string; id: string }[]> {
  const out: { image: string; id: string }[] = [];
  for (const o of await r.bucket.list(only === undefined ? r.keys.manifests : r.keys.manifestsOf(only))) {
    const m = /^([^/]+)\/([0-9a-f]{64})\.json$/.exec(r.keys.idOf(o.key, MANIFEST_DIR) ?? '');
    if (m) out.push({ image: m[1], id: m[2] });
  }
  return out;
}

/** Content-named: an object whose bytes do not hash to its name is damaged, never used. */
async function readNamed(r: Remote, what: 'index' | 'layer', key: string, id: string): Promise<Buffer> {
  const bytes = await r.bucket.get(key);
  if (sha256Hex(bytes) !== id) throw corrupt(`remote ${what} ${id} in ${r.bucket.where} does not match its name`, { [what]: id });
  return bytes;
}

/** One index object, checked against its name and decoded. */
export const readIndex = async (r: Remote, id: string): Promise<BlockPlace[]> => decodeIndex(await readNamed(r, 'index', r.keys.index(id), id), id);

/** One layer object, checked against its name and decoded; given the size its manifest records, checked against that too. */
export async function readLayer(r: Remote, id: string, virtualSize?: number): Promise<LayerMap> {
  const map = decodeLayer(await readNamed(r, 'layer', r.keys.layer(id), id), id);
  if (virtualSize !== undefined && map.virtualSize !== virtualSize) throw corrupt(`remote layer ${id} is ${map.virtualSize} bytes, its manifest says ${virtualSize}`, { layer: id });
  return map;
}

/**
 * Brings the cache up to the bucket's indexes: reads those this store has
 * not seen, forgets those `remote gc` has deleted. Returns how many were new.
 */
export async function syncIndexes(r: Remote): Promise<number> {
  const known = r.cache.knownIndexes();
  const listed = (await listIds(r, 'indexes')).map((o) => o.id);
  const there = new Set(listed);
  for (const id of known) if (!there.has(id)) r.cache.forgetIndex(id);
  const fresh = listed.filter((id) => !known.has(id));
  await mapLimit(fresh, SMALL_GETS, async (id) => r.cache.addIndex(id, await readIndex(r, id)));
  return fresh.length;
}

export interface RemoteImage {
  name: string;
  /** Manifests of this name, newest first. */
  manifests: { id: string; pushedAt: string; host: string; virtualSize: number; layers: number; blocks: number }[];
}

/** One manifest, checked against its name and image. */
export async function readManifest(r: Remote, image: string, id: string): Promise<Manifest> {
  const bytes = await r.bucket.get(r.keys.manifest(image, id));
  if (sha256Hex(bytes) !== id) throw corrupt(`remote manifest ${image}/${id} in ${r.bucket.where} does not match its name`, { manifest: id });
  const m = decodeManifest(bytes, `${image}/${id}`);
  if (m.image !== image) throw corrupt(`remote manifest ${image}/${id} names image ${m.image}`, { manifest: id });
  return m;
}

const newestFirst = (a: { pushedAt: string; id: string }, b: { pushedAt: string; id: string }) =>
  a.pushedAt < b.pushedAt ? 1 : a.pushedAt > b.pushedAt ? -1 : a.id < b.id ? -1 : 1;

/** Every image the remote holds (`only`: just that one), with its manifests. */
export async function listRemoteImages(r: Remote, only?: string): Promise<RemoteImage[]> {
  const read = await mapLimit(await listManifests(r, only), SMALL_GETS, async (f) => ({ ...f, m: await readManifest(r, f.image, f.id) }));
  const byName = new Map<string, RemoteImage>();
  for (const { image, id, m } of read) {
    let img = byName.get(image);
    if (!img) byName.set(image, (img = { name: image, manifests: [] }));
    const top = m.chain[m.chain.length - 1];
    img.manifests.push({ id, pushedAt: m.pushedAt, host: m.host, virtualSize: top.virtualSize, layers: m.chain.length, blocks: m.chain.reduce((n, l) => n + l.blocks, 0) });
  }
  const out = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const img of out) img.manifests.sort(newestFirst);
  return out;
}

/** The newest manifest of `image` (or the one whose id starts with `id`). */
export async function findManifest(r: Remote, image: string, id?: string): Promise<{ id: string; manifest: Manifest }> {
  const [img] = await listRemoteImages(r, image);
  const pick = img?.manifests.filter((m) => id === undefined || m.id.startsWith(id)) ?? [];
  if (pick.length === 0) throw new StrataError('E_NOT_FOUND', `remote ${r.config.name} has no image ${image}${id ? `@${id}` : ''}`, { remote: r.config.name, image });
  if (id !== undefined && pick.length > 1) throw new StrataError('E_BAD_INPUT', `${image}@${id} names ${pick.length} manifests; give more of the id`, { image, id });
  return { id: pick[0].id, manifest: await readManifest(r, image, pick[0].id) };
}

export const thisHost = (): string => os.hostname();

/**
 * Deletes the manifests of `image` (or the one whose id starts with `id`):
 * the image is no longer listed or pullable; its blocks go at the next
 * `remote gc` unless another manifest reaches them. Lazy clones of it on
 * other hosts lose the blocks they have not fetched yet, as a clone of a
 * destroyed snapshot would: say so before deleting.
 */
export async function deleteRemoteImage(r: Remote, image: string, id?: string): Promise<{ image: string; deleted: string[] }> {
  const [img] = await listRemoteImages(r, image);
  const pick = img?.manifests.filter((m) => id === undefined || m.id.startsWith(id)) ?? [];
  if (pick.length === 0) throw new StrataError('E_NOT_FOUND', `remote ${r.config.name} has no image ${image}${id ? `@${id}` : ''}`, { remote: r.config.name, image });
  if (id !== undefined && pick.length > 1) throw new StrataError('E_BAD_INPUT', `${image}@${id} names ${pick.length} manifests; give more of the id`, { image, id });
  for (const m of pick) await r.bucket.remove(r.keys.manifest(image, m.id));
  return { image, deleted: pick.map((m) => m.id) };
}
