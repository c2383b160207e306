/**
 * strata remote gc: deletes what no manifest reaches and repacks packs
 * that are mostly dead, under gc's exclusive lock (locks.ts), so no push
 * is half-way while it looks.
 *
 * 1. Reachable: every manifest, the layers their chains name, the blocks
 *    those layers name. A manifest or live layer that cannot be read stops
 *    gc before it deletes anything (`remote check` says what is wrong).
 * 2. Every index is read from the bucket (not the cache), and every pack's
 *    trailer (its last bytes, claims.ts). An index place counts only where
 *    its pack's own trailer lists it: anyone who can write an object can
 *    write an index claiming any block is anywhere, and such a claim must
 *    never make gc delete the pack that really holds the block. False
 *    claims and unreadable packs are reported in `problems`; an unreadable
 *    pack is never deleted.
 * 3. A block may have several confirmed places; each live block is kept in
 *    one, the pack holding the most live blocks (so a block a sparse pack
 *    shares with a full one is not copied). A pack keeping no live block is
 *    dead; one whose kept fragments fill less than `repackBelow` of it is
 *    copied. Before either goes, each live block its trailer lists must be
 *    kept elsewhere in a fragment checked against its digest (a forged pack
 *    can carry a trailer that lies), else it stays; a fragment found false
 *    is planned around. In a bucket without duplicates nothing needs checking.
 *    The copy: the kept fragments, as they are, into new packs, then one
 *    new index naming them.
 * 4. Every index naming a dead or copied pack, or a place no trailer confirms
 *    of a block that is dead or kept elsewhere, is replaced by one naming the
 *    rest of its entries (none: just deleted): the new one is written
 *    before the old one goes.
 * 5. Only then the dead and copied packs, then unreachable layers.
 *
 * Each step's writes complete before the next step's deletes, so a gc
 * killed anywhere leaves every live block in a pack an index names: the
 * bucket holds extra copies or extra indexes, which the next gc removes.
 * Manifests are never deleted here (`remote delete` does that).
 *
 * Lazy clones: a dependents record (dependents.ts) whose manifest is gone
 * and whose layers no manifest reaches names blocks a clone somewhere still
 * fetches. gc refuses (E_HAS_DEPENDENTS, before it writes or deletes
 * anything) unless `force`; a dry run lists them.
 */
import { bucketCorrupt, isStrataError, remoteMissing } from '../../errors.js';
import { faultDelay, faultPoint } from '../../store/core/index.js';
import type { CodecSpec } from '../../store/blocks/index.js';
import { decodeFragment, planRanges } from '../objects/fetch.js';
import { confirmed, falseClaims, placeKey, readTrailers, verifyFragments, type RemoteProblem } from '../objects/claims.js';
import { encodeIndex, encodeIndexes, MAX_INDEX_ENTRIES, packTrailerBytes, type BlockPlace } from '../objects/index-file.js';
import { digestsOf } from '../objects/layer-file.js';
import { sha256Hex } from '../objects/layout.js';
import { hasDependents, listDependents, type Dependent } from './dependents.js';
import { lockForGc } from './locks.js';
import { makePacker } from '../objects/packer.js';
import { mapLimit } from '../pool.js';
import { listIds, listManifests, readIndex, readLayer, readManifest, syncIndexes, type Remote } from '../remote.js';

export interface RemoteGcOptions {
  /** Report what would be done; change nothing. */
  dryRun?: boolean;
  /** Repack a pack whose live fragments fill less than this share of it (default 0.5, ZeroFS's rule). 0: never. */
  repackBelow?: number;
  packBytes?: number;
  compress?: CodecSpec | null;
  /** Collect what recorded lazy clones still need (they lose it). */
  force?: boolean;
}

export interface RemoteGcResult {
  remote: string;
  dryRun: boolean;
  manifests: number;
  layers: { live: number; deleted: number };
  blocks: { live: number };
  packs: { before: number; deleted: number; repacked: number; written: number };
  indexes: { before: number; rewritten: number; deleted: number; written: number };
  bytes: { before: number; after: number; deleted: number; written: number };
  /** Pack trailers read; fragments checked against their digests before a pack went for holding them elsewhere; of those, not their block. */
  checked: { trailers: number; fragments: number; refuted: number };
  /** Objects gc did not trust (false index claims, packs that do not hold what they say): never a reason to delete. */
  problems: RemoteProblem[];
  /** Recorded lazy clones that need layers no manifest reaches (collected only with force). */
  dependents: Dependent[];
}

const SMALL_GETS = 8;

const UNTIL_CLEAN = 'gc deletes nothing until remote check is clean';
/** A damaged object stops gc before it deletes anything; the message says so. */
const untilClean = (e: unknown): never => {
  throw isStrataError(e, 'E_CORRUPT') ? bucketCorrupt(`${e.message}; ${UNTIL_CLEAN}`, e.data) : e;
};
const DELETES = 8;

export async function remoteGc(remote: Remote, opts: RemoteGcOptions = {}): Promise<RemoteGcResult> {
  const repackBelow = opts.repackBelow ?? 0.5;
  const lock = await lockForGc(remote);
  try {
    const { keys, bucket } = remote;
    const where = bucket.where;
    faultDelay('remote-gc.locked');

    // 1. What the manifests reach.
    const listed = await listManifests(remote);
    const manifests = await mapLimit(listed, SMALL_GETS, (m) => readManifest(remote, m.image, m.id).catch(untilClean));
    const liveLayers = new Set(manifests.flatMap((m) => m.chain.map((l) => l.layer)));
    const dependents = orphanedDependents(await listDependents(remote), new Set(listed.map((m) => m.id)), liveLayers);
    if (dependents.length > 0 && !opts.force && !opts.dryRun) throw hasDependents(remote, `deleted image ${[...new Set(dependents.map((d) => d.image))].join(', ')}`, dependents);
    const layerObjects = await listIds(remote, 'layers');
    const present = new Set(layerObjects.map((o) => o.id));
    for (const id of liveLayers) if (!present.has(id)) throw remoteMissing(`remote ${remote.config.name}: layer ${id} that a manifest names is missing from ${where}; ${UNTIL_CLEAN}`, { layer: id });
    const live = new Set<string>();
    await mapLimit([...liveLayers], SMALL_GETS, async (id) => {
      for (const d of digestsOf(await readLayer(remote, id).catch(untilClean))) live.add(d);
    });

    // 2. Where every block is: the indexes say, each pack's own trailer confirms (claims.ts). An
    // index is anyone's to write; what no trailer confirms is reported and never relied on.
    const packObjects = new Map((await listIds(remote, 'packs')).map((o) => [o.id, o.size]));
    const indexIds = (await listIds(remote, 'indexes')).map((o) => o.id);
    const indexes = await mapLimit(indexIds, SMALL_GETS, async (id) => ({ id, places: await readIndex(remote, id).catch(untilClean) }));
    const { trailers, problems } = await readTrailers(remote, packObjects);
    // A pack whose trailer cannot be read: what it holds is unknown, so it is neither deleted nor relied on.
    const unreadable = new Set(problems.map((p) => p.id));
    for (const ix of indexes) {
      const f = falseClaims(ix.id, ix.places, packObjects, trailers, unreadable);
      if (f) problems.push(f);
    }
    const holders = new Map<string, BlockPlace[]>();
    for (const { places } of indexes) {
      for (const p of places) {
        const hex = p.digest.toString('hex');
        if (!live.has(hex) || !confirmed(trailers, p)) continue;
        let l = holders.get(hex);
        if (!l) holders.set(hex, (l = []));
        if (!l.some((q) => q.pack === p.pack)) l.push(p);
      }
    }
    // What deleting each pack would take away: the live blocks its own trailer lists.
    const claims = new Map<string, BlockPlace[]>();
    for (const [pack, t] of trailers) {
      const l = [...t.values()].filter((e) => live.has(e.digest.toString('hex')));
      if (l.length > 0) claims.set(pack, l);
    }

    // 3. Keepers, dead packs, sparse packs. A pack goes only when every live block its trailer lists
    // is kept elsewhere in a fragment checked against its digest, or is shown not to be in it: a
    // forged pack's trailer can claim blocks it does not hold, and must never win a real pack's
    // blocks away. Checking only where a pack would go because another holds the same block costs
    // nothing in a bucket without duplicates; each round that finds a false fragment plans again
    // without it.
    const refuted = new Set<string>();
    const verified = new Set<string>();
    const fragmentKey = (p: BlockPlace) => `${p.pack}:${placeKey(p)}`;
    let plan: KeepPlan;
    let pinned: Map<string, BlockPlace>;
    let fragments = 0;
    for (;;) {
      plan = planKeep(holders, (p) => refuted.has(fragmentKey(p)), packObjects, unreadable, repackBelow);
      pinned = new Map();
      const need = new Map<string, BlockPlace>();
      // A sparse pack's kept fragments are copied, and checked on the way; one another pack also holds
      // is checked first, so a false one is planned around rather than stopping the copy.
      for (const id of plan.sparse) {
        for (const k of plan.byPack.get(id)!) if (holders.get(k.digest.toString('hex'))!.length > 1 && !verified.has(fragmentKey(k))) need.set(fragmentKey(k), k);
      }
      for (const id of [...plan.dead, ...plan.sparse]) {
        for (const e of claims.get(id) ?? []) {
          if (refuted.has(fragmentKey(e))) continue;
          const k = plan.keep.get(e.digest.toString('hex'));
          if (k === undefined) {
            if (!pinned.has(id)) pinned.set(id, e);
          } else if (k.pack !== id && !verified.has(fragmentKey(k))) need.set(fragmentKey(k), k);
        }
      }
      if (need.size === 0) break;
      fragments += need.size;
      const bad = await verifyFragments(remote, [...need.values()]);
      for (const p of bad) refuted.add(fragmentKey(p));
      for (const [key] of need) if (!refuted.has(key)) verified.add(key);
      if (bad.length === 0) break;
    }
    const refutedBy = new Map<string, string[]>();
    for (const key of refuted) {
      const [pack, place] = key.split(':');
      let l = refutedBy.get(pack);
      if (!l) refutedBy.set(pack, (l = []));
      l.push(place);
    }
    for (const [pack, l] of refutedBy) {
      problems.push({ object: 'pack', id: pack, message: `pack ${pack} does not hold what its trailer says: ${l.length} fragment(s) are not their block (first: ${l[0].replace('@', ' at ')}); not relied on` });
    }
    for (const [pack, e] of pinned) {
      problems.push({ object: 'pack', id: pack, message: `pack ${pack} holds live block(s) that no index places in a pack holding them (first: ${e.digest.toString('hex')}); kept` });
    }
    const { keep: kept, byPack } = plan;
    const dead = plan.dead.filter((id) => !pinned.has(id));
    const sparse = plan.sparse.filter((id) => !pinned.has(id));
    const gone = new Set([...dead, ...sparse]);
    // An index place to drop when indexes are rewritten: its pack goes or is gone, or no trailer
    // confirms it and its block is dead or kept elsewhere (a place that is the only word left of a
    // live block stays for the owner to judge, reported above).
    const stale = (p: BlockPlace) => {
      if (gone.has(p.pack) || !packObjects.has(p.pack)) return true;
      if (!trailers.has(p.pack) || confirmed(trailers, p)) return false;
      const hex = p.digest.toString('hex');
      return !live.has(hex) || kept.has(hex);
    };
    const deadLayers = layerObjects.filter((o) => !liveLayers.has(o.id));
    const before = [...packObjects.values()].reduce((n, s) => n + s, 0);
    const result: RemoteGcResult = {
      remote: remote.config.name,
      dryRun: opts.dryRun === true,
      manifests: manifests.length,
      layers: { live: liveLayers.size, deleted: deadLayers.length },
      blocks: { live: live.size },
      packs: { before: packObjects.size, deleted: dead.length, repacked: sparse.length, written: 0 },
      indexes: { before: indexIds.length, rewritten: 0, deleted: 0, written: 0 },
      bytes: { before, after: before, deleted: [...gone].reduce((n, id) => n + packObjects.get(id)!, 0), written: 0 },
      checked: { trailers: trailers.size, fragments, refuted: refuted.size },
      problems,
      dependents,
    };
    if (opts.dryRun) {
      // The counts the real run would report, found without a write: `gc -n` then `gc` agree.
      const copies = sparse.flatMap((id) => planRanges(byPack.get(id)!, 64 * 1024, 8 * 1024 * 1024).flatMap((r) => r.places));
      const packed = packSizes(copies.map((p) => p.length), opts.packBytes ?? 16 * 1024 * 1024);
      result.packs.written = packed.length;
      result.bytes.written = packed.reduce((n, s) => n + s, 0);
      result.indexes.written = Math.ceil(copies.length / MAX_INDEX_ENTRIES);
      for (const ix of indexes.filter((x) => x.places.some(stale))) {
        const rest = ix.places.filter((p) => !stale(p));
        if (rest.length > 0 && sha256Hex(encodeIndex(rest)) === ix.id) continue;
        if (rest.length > 0) result.indexes.written++;
        result.indexes.rewritten += rest.length > 0 ? 1 : 0;
        result.indexes.deleted++;
      }
      result.bytes.after = before - result.bytes.deleted + result.bytes.written;
      return result;
    }

    // Copy what the sparse packs keep, fragments as they are, then the index naming the copies.
    if (sparse.length > 0) {
      const packer = makePacker(remote, { packBytes: opts.packBytes, compress: opts.compress });
      for (const id of sparse) {
        for (const r of planRanges(byPack.get(id)!, 64 * 1024, 8 * 1024 * 1024)) {
          const body = await bucket.getRange(keys.pack(r.pack), r.start, r.end);
          await packer.addFragments(
            r.places.map((p) => {
              decodeFragment(p, body, p.offset - r.start); // throws on a fragment that is not its block
              return { digest: p.digest, hint: p.hint, codec: p.codec, bytes: body.subarray(p.offset - r.start, p.offset - r.start + p.length) };
            }),
          );
        }
      }
      const places = await packer.finish();
      // A copy is named by its content: it may be a pack that exists already (one a killed gc
      // wrote, deemed dead just now). Never delete what was just written.
      for (const p of places) gone.delete(p.pack);
      for (const { bytes } of encodeIndexes(places)) {
        await bucket.put(keys.index(sha256Hex(bytes)), bytes);
        result.indexes.written++;
      }
      result.packs.written = packer.stats.packs;
      result.bytes.written = packer.stats.packedBytes;
    }
    faultPoint('remote-gc.after-repack');

    // 4. Indexes without the dead and copied packs: the new written before the old goes.
    for (const ix of indexes.filter((x) => x.places.some(stale))) {
      const rest = ix.places.filter((p) => !stale(p));
      if (rest.length > 0) {
        const bytes = encodeIndex(rest);
        const id = sha256Hex(bytes);
        if (id === ix.id) continue; // the same index (content-named): nothing to replace
        await bucket.put(keys.index(id), bytes);
        result.indexes.written++;
      }
      await bucket.remove(keys.index(ix.id));
      result.indexes.rewritten += rest.length > 0 ? 1 : 0;
      result.indexes.deleted++;
    }
    faultPoint('remote-gc.after-indexes');

    // 5. What nothing names any more.
    await mapLimit([...gone], DELETES, (id) => bucket.remove(keys.pack(id)));
    faultPoint('remote-gc.after-packs');
    await mapLimit(deadLayers, DELETES, (o) => bucket.remove(keys.layer(o.id)));
    result.bytes.after = before - result.bytes.deleted + result.bytes.written;
    await syncIndexes(remote);
    return result;
  } finally {
    await lock.release();
  }
}

/** The records whose clones would lose blocks: manifest gone, and a layer (or, unreadable, possibly one) no manifest reaches. */
function orphanedDependents(all: readonly Dependent[], manifests: ReadonlySet<string>, liveLayers: ReadonlySet<string>): Dependent[] {
  return all.filter((d) => !manifests.has(d.manifest) && (!d.record || d.record.layers.some((l) => !liveLayers.has(l))));
}

interface KeepPlan {
  /** Each live block that has a confirmed place: the one it is kept in. */
  keep: Map<string, BlockPlace>;
  /** The same, by the pack they are kept in. */
  byPack: Map<string, BlockPlace[]>;
  /** Packs keeping no live block. */
  dead: string[];
  /** Packs whose kept fragments fill less than repackBelow of them. */
  sparse: string[];
}

/**
 * Each live block kept once: in the pack most of which is live (ties: the smaller id), so a copy
 * a killed gc made wins over the sparse pack it was copied from. Pure; packs in `unreadable` are
 * neither dead nor sparse, places `refuted` never kept.
 */
function planKeep(holders: ReadonlyMap<string, BlockPlace[]>, refuted: (p: BlockPlace) => boolean, packs: ReadonlyMap<string, number>, unreadable: ReadonlySet<string>, repackBelow: number): KeepPlan {
  const liveBytes = new Map<string, number>();
  const usable = new Map<string, BlockPlace[]>();
  for (const [hex, l] of holders) {
    const ok = l.filter((p) => !refuted(p));
    if (ok.length === 0) continue;
    usable.set(hex, ok);
    for (const p of ok) liveBytes.set(p.pack, (liveBytes.get(p.pack) ?? 0) + p.length);
  }
  const density = (pack: string) => liveBytes.get(pack)! / packs.get(pack)!;
  const keep = new Map<string, BlockPlace>();
  const byPack = new Map<string, BlockPlace[]>();
  for (const [hex, l] of usable) {
    const best = l.reduce((a, b) => {
      const da = density(a.pack);
      const db = density(b.pack);
      return db > da || (db === da && b.pack < a.pack) ? b : a;
    });
    keep.set(hex, best);
    let k = byPack.get(best.pack);
    if (!k) byPack.set(best.pack, (k = []));
    k.push(best);
  }
  const dead: string[] = [];
  const sparse: string[] = [];
  for (const [id, size] of packs) {
    if (unreadable.has(id)) continue;
    const k = byPack.get(id);
    if (!k) dead.push(id);
    else if (k.reduce((n, p) => n + p.length, 0) < repackBelow * size) sparse.push(id);
  }
  return { keep, byPack, dead, sparse };
}

/** The sizes of the packs a packer makes of fragments of these lengths, in this order (packer.ts seals a pack once it reaches `packBytes`). */
function packSizes(lengths: readonly number[], packBytes: number): number[] {
  const out: number[] = [];
  let size = 0;
  let count = 0;
  const seal = () => {
    if (count > 0) out.push(size + packTrailerBytes(count));
    size = 0;
    count = 0;
  };
  for (const l of lengths) {
    size += l;
    count++;
    if (size >= packBytes) seal();
  }
  seal();
  return out;
}
