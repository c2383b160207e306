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
 * per block); a block with no place in a pack the bucket holds is kept, and
 * is never counted as evictable again (evict.ts keeps it, as unplaced).
 * A bucket that cannot be asked evicts nothing.
 */
import type { Logger } from '../log.js';
import { countCached, evictCached, type CacheScope, type EvictReport } from '../store/evict.js';
import type { Store } from '../store/store.js';
import type { ImageRecord } from '../store/types.js';
import { BLOCK_SIZE } from '../store/types.js';
import { loadRemote, type RemoteConfig } from './config.js';
import { mapLimit } from './pool.js';
import { syncIndexes, type Remote } from './remote.js';

/** `source.format` of a lazy clone's layers (lazy.ts). */
export const LAZY_FORMAT = 'remote-lazy';

/** The remote a lazy layer's blocks come from; undefined for any other image. */
export function lazyRemoteOf(rec: ImageRecord): string | undefined {
  const s = rec.source;
  return s?.format === LAZY_FORMAT && typeof s.remote === 'string' ? s.remote : undefined;
}

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

/** HEAD requests in flight at once while confirming packs. */
const HEADS = 8;

/**
 * Evicts the remote's idle cached blocks, oldest fetched first, until at
 * most `to` bytes are cached; only blocks whose pack the bucket holds.
 */
export async function evictRemoteCache(store: Store, remote: Remote, to: number): Promise<EvictReport> {
  await syncIndexes(remote);
  /** Pack id → the bucket holds it (asked once per pass). */
  const held = new Map<string, boolean>();
  let total: EvictReport | undefined;
  for (;;) {
    const ask = new Set<string>();
    const r = evictCached(store, scopeOf(remote.config.name), to, {
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
    if (ask.size === 0) return { ...total, deferred: 0 };
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
