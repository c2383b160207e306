/**
 * An open remote: its configuration, bucket, key names and local cache, and
 * the reads every command starts with (the indexes, the manifests).
 */
import os from 'node:os';
import { StrataError, corrupt } from '../errors.js';
import { loadRemote, type RemoteConfig } from './config.js';
import { openRemoteCache, type RemoteCache } from './cache.js';
import { decodeIndex } from './index-file.js';
import { HEX_ID, INDEX_DIR, MANIFEST_DIR, keysFor, sha256Hex, type Keys } from './layout.js';
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

/**
 * Brings the cache up to the bucket's indexes: reads those this store has
 * not seen, forgets those `remote gc` has deleted. Returns how many were new.
 */
export async function syncIndexes(r: Remote): Promise<number> {
  const known = r.cache.knownIndexes();
  const listed = (await r.bucket.list(r.keys.indexes)).map((o) => r.keys.idOf(o.key, INDEX_DIR)!).filter((id) => HEX_ID.test(id));
  const there = new Set(listed);
  for (const id of known) if (!there.has(id)) r.cache.forgetIndex(id);
  const fresh = listed.filter((id) => !known.has(id));
  await mapLimit(fresh, SMALL_GETS, async (id) => {
    const bytes = await r.bucket.get(r.keys.index(id));
    // Content-named: an object whose bytes do not hash to its name is damaged, never used.
    if (sha256Hex(bytes) !== id) throw corrupt(`remote index ${id} in ${r.bucket.where} does not match its name`, { index: id });
    r.cache.addIndex(id, decodeIndex(bytes, id));
  });
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
  const listed = await r.bucket.list(only === undefined ? r.keys.manifests : r.keys.manifestsOf(only));
  const found: { image: string; id: string }[] = [];
  for (const o of listed) {
    const m = /^([^/]+)\/([0-9a-f]{64})\.json$/.exec(r.keys.idOf(o.key, MANIFEST_DIR) ?? '');
    if (m) found.push({ image: m[1], id: m[2] });
  }
  const read = await mapLimit(found, SMALL_GETS, async (f) => ({ ...f, m: await readManifest(r, f.image, f.id) }));
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
