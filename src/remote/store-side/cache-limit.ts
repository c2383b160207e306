/**
 * The size limit of a remote's local cache (`strata remote add|set NAME
 * --cache-size SIZE`, kept in remote.json): how many bytes of fetched blocks
 * that only its lazy layers use this store keeps (store/evict.ts says which
 * blocks those are, and how one is evicted). Blocks a local image owns (a
 * leaf's writes, an imported or pulled image that shares them) are not
 * cache and never evicted; blocks of images some process holds open stay
 * until they are closed.
 *
 * When: after a fetch batch (LazyFetcher) takes the cache over its limit,
 * and when a read (`strata read`, `export`) lets go of what it fetched; and
 * on demand (`strata remote evict`). A pass brings the cache down to 7/8
 * of the limit, so a steady stream of fetches costs a pass per eighth of
 * the limit, not one per request; when open images hold it over, the next
 * pass waits for another eighth to be fetched.
 *
 * A local copy is dropped only while the bucket still holds the block:
 * another host's `remote delete` + `remote gc` may have removed it, and then
 * the local copy is the only one. So a pass first brings the index cache up
 * to the bucket (what gc deleted is forgotten, what it repacked is learnt),
 * then asks the bucket for each pack it would name (one HEAD per pack, not
 * per block); a block with no place in a pack the bucket holds is kept
 * (evict.ts: unplaced). A lazy layer whose layer object the bucket no longer
 * has (its image deleted and collected) and whose blocks are all here is
 * made an ordinary local image first (adoptLayer): the local copy is the
 * only one, so nothing counts it as cache again. A bucket that cannot be
 * asked evicts nothing.
 */
import type { Logger } from '../../log.js';
import { getImage, listImages, updateImage, segmentsOf, segGet } from '../../store/images/index.js';
import { remoteSlotsOf } from '../../store/blocks/index.js';
import { countCached, evictCached, type CacheScope, type EvictReport } from '../../store/upkeep/index.js';
import type { Reader, Store, ImageRecord } from '../../store/core/index.js';
import { BLOCK_SIZE, SEGMENT_ENTRIES } from '../../store/core/index.js';
import { loadRemote, type RemoteConfig } from '../config.js';
import { syncDependents } from '../upkeep/dependents.js';
import { mapLimit } from '../pool.js';
import { syncIndexes, type Remote } from '../remote.js';

import { lazyRemoteOf } from '../lazy-source.js';
export { LAZY_FORMAT, lazyRemoteOf } from '../lazy-source.js';

const scopeOf = (remote: string): CacheScope => ({ remote, lazyRemoteOf });

export interface CacheUsage {
  /** The limit in bytes; null: none. */
  limit: number | null;
  cachedBlocks: number;
  cachedBytes: number;
  /** Of those, used by images some process holds open. */
  inUseBytes: number;
}

export function cacheUsage(store: Store, config: RemoteConfig): CacheUsage {
  const c = countCached(store, scopeOf(config.name));
  return { limit: config.cacheSize ?? null, cachedBlocks: c.blocks, cachedBytes: c.blocks * BLOCK_SIZE, inUseBytes: c.inUse * BLOCK_SIZE };
}

/** HEAD requests in flight at once while confirming packs and layers. */
const HEADS = 8;

/** The slots `rec`'s own map names. */
export function ownSlotsOf(r: Reader, rec: ImageRecord): number[] {
  const slots: number[] = [];
  for (const [, seg] of segmentsOf(r, rec.id)) {
    for (let i = 0; i < SEGMENT_ENTRIES; i++) {
      const e = segGet(seg, i);
      if (e >= 2) slots.push(e - 2);
    }
  }
  return slots;
}

/**
 * Makes lazy layer `rec` an ordinary pulled image: its source says 'remote',
 * so the cache limit no longer counts its blocks and nothing evicts them.
 * Only while its own blocks are all local (checked in the same transaction);
 * undefined if not, or if `rec` changed meanwhile.
 */
export function adoptLayer(store: Store, remote: Remote, rec: ImageRecord, layer: string): ImageRecord | undefined {
  const adopted = store.write((tx) => {
    const now = getImage(tx, rec.name);
    if (now.id !== rec.id || now.generation !== rec.generation) return undefined;
    if (remoteSlotsOf(tx, ownSlotsOf(tx, now)).length > 0) return undefined;
    updateImage(tx, now.id, { source: { ...now.source, format: 'remote' } });
    return getImage(tx, now.name);
  });
  if (adopted) remote.cache.setLayer(adopted.id, adopted.generation, layer);
  return adopted;
}

/** Adopts this remote's fully fetched lazy layers whose layer object the bucket no longer has. */
async function adoptOrphans(store: Store, remote: Remote): Promise<void> {
  const lazy = listImages(store).filter((rec) => lazyRemoteOf(rec) === remote.config.name && typeof rec.source?.layer === 'string');
  const gone: ImageRecord[] = [];
  await mapLimit(lazy, HEADS, async (rec) => {
    if (!(await remote.bucket.has(remote.keys.layer(rec.source!.layer as string)))) gone.push(rec);
  });
  for (const rec of gone) adoptLayer(store, remote, rec, rec.source!.layer as string);
}

/**
 * Evicts the remote's idle cached blocks, oldest fetched first, until at
 * most `to` bytes are cached; only blocks whose pack the bucket holds.
 */
export async function evictRemoteCache(store: Store, remote: Remote, to: number): Promise<EvictReport> {
  await syncIndexes(remote);
  await adoptOrphans(store, remote);
  const scope = scopeOf(remote.config.name);
  const evicting = countCached(store, scope).blocks * BLOCK_SIZE > Math.max(0, to);
  if (evicting) await syncDependents(store, remote, { evictable: true, keepOthers: true });
  /** Pack id → the bucket holds it (asked once per pass). */
  const held = new Map<string, boolean>();
  let total: EvictReport | undefined;
  for (;;) {
    const ask = new Set<string>();
    const r = evictCached(store, scope, to, {
      placeOf: (digest) => {
        let unknown = false;
        for (const p of remote.cache.places(digest)) {
          const h = held.get(p.pack);
          if (h === true) return p;
          if (h === undefined) {
            ask.add(p.pack);
            unknown = true;
          }
        }
        return unknown ? 'later' : undefined;
      },
      fetchedAt: (slots) => remote.cache.fetchedAt(slots),
      onEvicted: (slots) => remote.cache.forgetFetched(slots),
    });
    total = total ? { ...r, before: total.before, evicted: total.evicted + r.evicted } : r;
    if (ask.size === 0) {
      if (evicting) await syncDependents(store, remote);
      return { ...total, deferred: 0 };
    }
    await mapLimit([...ask], HEADS, async (pack) => held.set(pack, await remote.bucket.has(remote.keys.pack(pack))));
  }
}

/** The bytes a pass over the limit brings the cache down to. */
export const lowWater = (limit: number): number => limit - Math.floor(limit / 8);

/**
 * Keeps one remote under its limit for a fetcher: call with the blocks each
 * batch installed, or with `released` when readers let go of images (what
 * they held may be evicted now). Best effort: a pass that fails is logged,
 * never the reader's error.
 */
export function cacheLimiter(store: Store, remote: Remote, log?: Logger): (fetched: number, released?: boolean) => Promise<EvictReport | undefined> {
  /** Bytes cached as last counted, plus what was fetched since. Unknown until the first pass. */
  let estimate: number | undefined;
  let threshold = 0;
  /** One pass at a time: readers fetching together would otherwise start one each. */
  let running = false;
  return async (fetched, released = false) => {
    let limit: number | undefined;
    try {
      // Read each time: `strata remote set` may have changed it under a running server.
      limit = loadRemote(store.dir, remote.config.name).cacheSize;
    } catch {
      return undefined; // the remote was removed: nothing to keep under a limit
    }
    if (limit === undefined) return undefined;
    if (estimate !== undefined) estimate += fetched * BLOCK_SIZE;
    if (estimate !== undefined && estimate <= (released ? limit : Math.max(limit, threshold))) return undefined;
    if (running) return undefined;
    running = true;
    try {
      const r = await evictRemoteCache(store, remote, lowWater(limit));
      estimate = r.after * BLOCK_SIZE;
      threshold = estimate + Math.floor(limit / 8);
      if (r.evicted > 0) log?.debug({ remote: remote.config.name, evicted: r.evicted, inUse: r.inUse, after: r.after }, 'evicted cached remote blocks');
      return r;
    } catch (e) {
      log?.warn({ remote: remote.config.name, err: (e as Error).message }, 'could not evict cached remote blocks');
      return undefined;
    } finally {
      running = false;
    }
  };
}
