/**
 * Who depends on what in a bucket: the record of which stores hold lazy
 * clones of which manifests (rbd's children list, ZFS's clone origins).
 *
 *   dependents/<image>/<manifest id>/<store id>.json
 *
 * One small JSON object per (store, manifest) that some local image of that
 * store still fetches blocks of: the host and store directory, the local
 * images that need them, and the layers whose blocks they are. `remote
 * delete` refuses to delete a manifest that has records, and `remote gc`
 * refuses to collect the layers (and so the packs) a record names that no
 * manifest reaches any more, unless --force (remote.ts, gc.ts).
 *
 * The records follow this store's state, written by one function
 * (syncDependents) from what the store holds: a record for each manifest
 * whose lazy layers still have blocks only in the bucket, none for the
 * others. Order keeps a crash safe for the clones (a stale record only makes
 * delete and gc more careful, never less):
 * - a lazy clone writes its record before it makes any local layer;
 * - an eviction writes records for every lazy layer it may evict from
 *   before it evicts (evicted blocks are remote-only again);
 * - records no longer needed are removed last, after the local change that
 *   ended the need (an image removed, its blocks all fetched) committed.
 * A record left by a killed command is removed by the next sync of that
 * store with that remote (a clone, a read that fetched, an rm, an eviction).
 *
 * Records come from other hosts and are not to be trusted further than
 * this: each is read with a size limit, and one that cannot be read or
 * decoded still counts as a dependent (named by its key), never as none.
 */
import os from 'node:os';
import { StrataError } from '../../errors.js';
import { descendantsOf, listImages } from '../../store/images/index.js';
import { faultPoint, storeId, BLOCK_SIZE, type ImageRecord } from '../../store/core/index.js';
import { remoteOnlyByImage } from '../../store/upkeep/index.js';
import type { Store } from '../../store/core/index.js';
import { printable } from '../../untrusted.js';
import { DEPENDENT_DIR, HEX_ID } from '../objects/layout.js';
import { lazyRemoteOf } from '../lazy-source.js';
import { mapLimit } from '../pool.js';
import type { Remote } from '../remote.js';

/** A record is one line of JSON naming at most MAX_NAMES images: a larger object is refused unread. */
export const MAX_DEPENDENT_BYTES = 64 * 1024;
const MAX_NAMES = 64;
const GETS = 8;

/** What one store records about its lazy clones of one manifest. */
export interface DependentRecord {
  store: string;
  host: string;
  /** The store's directory on that host. */
  dir: string;
  /** The remote image and the manifest its clones were made from. */
  image: string;
  manifest: string;
  /** The layers whose blocks those clones still fetch from the bucket. */
  layers: string[];
  /** Local images that need them (the lazy layers and the images over them), at most MAX_NAMES. */
  images: string[];
  /** How many more there are than `images` names. */
  moreImages: number;
  /** Bytes of those layers held only in the bucket when the record was written. */
  remoteBytes: number;
  at: string;
}

/** A record as found in the bucket: its key's parts, and its body where it could be read. */
export interface Dependent {
  key: string;
  image: string;
  manifest: string;
  store: string;
  record?: DependentRecord;
  /** Why the body could not be used (it still counts). */
  problem?: string;
}

/** A dependent as commands report it (--json). */
export interface DependentInfo {
  image: string;
  manifest: string;
  store: string;
  host: string | null;
  dir: string | null;
  images: string[] | null;
  moreImages: number;
  layers: string[] | null;
  remoteBytes: number | null;
  /** Why its record could not be read (it still counts). */
  problem?: string;
}

export const dependentInfo = (d: Dependent): DependentInfo => ({
  image: d.image,
  manifest: d.manifest,
  store: d.store,
  host: d.record?.host ?? null,
  dir: d.record?.dir ?? null,
  images: d.record?.images ?? null,
  moreImages: d.record?.moreImages ?? 0,
  layers: d.record?.layers ?? null,
  remoteBytes: d.record?.remoteBytes ?? null,
  ...(d.problem ? { problem: d.problem } : {}),
});

/** One dependent in a line: "host h, store /dir (vm, img)". */
export function dependentText(d: DependentInfo): string {
  if (d.host === null) return printable(`store ${d.store} (its record of ${d.image}@${d.manifest.slice(0, 12)} is unreadable: ${d.problem ?? '?'})`);
  const names = (d.images ?? []).join(', ') + (d.moreImages > 0 ? ` and ${d.moreImages} more` : '');
  return printable(`host ${d.host}, store ${d.dir} (${names || 'no image named'})`);
}

/** The error of `remote delete` and `remote gc` when recorded lazy clones need what they would remove. */
export function hasDependents(remote: Remote, what: string, deps: readonly Dependent[]): StrataError {
  const info = deps.map(dependentInfo);
  return new StrataError(
    'E_HAS_DEPENDENTS',
    `${what} on remote ${remote.config.name} is needed by ${deps.length} lazy clone(s): ${info.map(dependentText).join('; ')}; ` +
      'they still fetch its blocks from the bucket (fetch them there first, e.g. strata export, or remove them), or use --force',
    { remote: remote.config.name, dependents: info },
  );
}

const strings = (v: unknown, max: number): v is string[] => Array.isArray(v) && v.length <= max && v.every((x) => typeof x === 'string');

function decodeRecord(bytes: Buffer): DependentRecord {
  const o = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== 'string') throw new Error(`no ${k}`);
    return o[k] as string;
  };
  if (!strings(o.layers, 1 << 16) || !o.layers.every((l) => HEX_ID.test(l))) throw new Error('bad layers');
  if (!strings(o.images, MAX_NAMES)) throw new Error('bad images');
  return {
    store: str('store'),
    host: str('host'),
    dir: str('dir'),
    image: str('image'),
    manifest: str('manifest'),
    layers: o.layers,
    images: o.images,
    moreImages: Number(o.moreImages) || 0,
    remoteBytes: Number(o.remoteBytes) || 0,
    at: str('at'),
  };
}

/** The parts of a dependents key, or undefined for a key that is not one. */
function parseKey(r: Remote, key: string): Omit<Dependent, 'key'> | undefined {
  const m = /^([^/]+)\/([0-9a-f]{64})\/([^/]+)\.json$/.exec(r.keys.idOf(key, DEPENDENT_DIR) ?? '');
  return m ? { image: m[1], manifest: m[2], store: m[3] } : undefined;
}

/** The records in the bucket (`image`: of that remote image only), read. */
export async function listDependents(r: Remote, image?: string): Promise<Dependent[]> {
  const found: Dependent[] = [];
  for (const o of await r.bucket.list(image === undefined ? r.keys.dependents : r.keys.dependentsOf(image))) {
    const k = parseKey(r, o.key);
    if (k) found.push({ key: o.key, ...k });
  }
  await mapLimit(found, GETS, async (d) => {
    try {
      d.record = decodeRecord(await r.bucket.get(d.key, MAX_DEPENDENT_BYTES));
    } catch (e) {
      // Removed since the listing (its store synced): no longer a dependent.
      if (e instanceof StrataError && e.code === 'E_NOT_FOUND') d.problem = 'gone';
      else d.problem = e instanceof Error ? e.message : String(e);
    }
  });
  return found.filter((d) => d.problem !== 'gone');
}

/** What this store needs from one manifest of the remote. */
interface Need {
  image: string;
  manifest: string;
  layers: Set<string>;
  images: Set<string>;
  slots: Set<number>;
}

const isLazyOf = (rec: ImageRecord, remote: string): boolean =>
  lazyRemoteOf(rec) === remote && typeof rec.source?.manifest === 'string' && typeof rec.source?.image === 'string' && typeof rec.source?.layer === 'string';

/**
 * Per manifest of `remote`: the lazy layers made from it that hold blocks
 * only in the bucket (`evictable`: every lazy layer made from it, whose
 * fetched blocks an eviction may make remote-only again), and the images
 * that need them.
 */
function localNeeds(store: Store, remote: string, evictable: boolean): Map<string, Need> {
  const only = remoteOnlyByImage(store);
  const needs = new Map<string, Need>();
  for (const rec of listImages(store)) {
    if (!isLazyOf(rec, remote)) continue;
    const far = only.get(rec.id)?.get(remote);
    if (!evictable && !far?.size) continue;
    const manifest = rec.source!.manifest as string;
    let n = needs.get(manifest);
    if (!n) needs.set(manifest, (n = { image: rec.source!.image as string, manifest, layers: new Set(), images: new Set(), slots: new Set() }));
    n.layers.add(rec.source!.layer as string);
    n.images.add(rec.name);
    for (const d of descendantsOf(store, rec.id)) n.images.add(d.name);
    for (const s of far ?? []) n.slots.add(s);
  }
  return needs;
}

function recordOf(store: Store, id: string, n: Need): DependentRecord {
  const images = [...n.images].sort();
  return {
    store: id,
    host: os.hostname(),
    dir: store.dir,
    image: n.image,
    manifest: n.manifest,
    layers: [...n.layers].sort(),
    images: images.slice(0, MAX_NAMES),
    moreImages: Math.max(0, images.length - MAX_NAMES),
    remoteBytes: n.slots.size * BLOCK_SIZE,
    at: new Date().toISOString(),
  };
}

const put = (r: Remote, rec: DependentRecord) => r.bucket.put(r.keys.dependent(rec.image, rec.manifest, rec.store), Buffer.from(JSON.stringify(rec) + '\n'));

/**
 * Before a lazy clone makes any local layer: the record that it is about to
 * depend on `manifest` (all of its chain's layers, the leaf to be). The
 * sync after the clone narrows it to what the clone really needs.
 */
export async function recordCloneIntent(store: Store, r: Remote, image: string, manifest: string, layers: readonly string[], leaf: string): Promise<void> {
  const id = storeId(store);
  const n: Need = { image, manifest, layers: new Set(layers), images: new Set([leaf]), slots: new Set() };
  // Whatever this store already records for the manifest stays named too.
  const mine = localNeeds(store, r.config.name, true).get(manifest);
  for (const l of mine?.layers ?? []) n.layers.add(l);
  for (const i of mine?.images ?? []) n.images.add(i);
  await put(r, recordOf(store, id, n));
  faultPoint('dependents.after-intent');
}

/**
 * Brings this store's records in `r`'s bucket up to what it holds: a record
 * for each manifest it still needs blocks of, written first; then the
 * records it no longer needs removed (unless `keepOthers`). `evictable`
 * counts every lazy layer as needing its manifest (before an eviction).
 */
export async function syncDependents(store: Store, r: Remote, opts: { evictable?: boolean; keepOthers?: boolean } = {}): Promise<{ written: number; removed: number }> {
  const id = storeId(store);
  const needs = localNeeds(store, r.config.name, opts.evictable === true);
  for (const n of needs.values()) await put(r, recordOf(store, id, n));
  if (needs.size > 0) faultPoint('dependents.after-put');
  let removed = 0;
  if (!opts.keepOthers) {
    for (const o of await r.bucket.list(r.keys.dependents)) {
      const k = parseKey(r, o.key);
      if (!k || k.store !== id || needs.has(k.manifest)) continue;
      faultPoint('dependents.before-remove');
      await r.bucket.remove(o.key);
      removed++;
    }
  }
  return { written: needs.size, removed };
}

/** syncDependents for a command whose own work is done: a bucket that cannot be reached leaves a stale record (only more careful), and a warning. */
export async function syncDependentsAfter(store: Store, r: Remote, warn?: (msg: string) => void): Promise<void> {
  try {
    await syncDependents(store, r);
  } catch (e) {
    warn?.(`could not update ${r.config.name}'s record of this store's lazy clones (${e instanceof Error ? e.message : String(e)}); remote delete and gc stay careful until the next sync`);
  }
}
