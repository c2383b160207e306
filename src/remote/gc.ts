/**
 * strata remote gc: deletes what no manifest reaches and repacks packs
 * that are mostly dead, under gc's exclusive lock (locks.ts), so no push
 * is half-way while it looks.
 *
 * 1. Reachable: every manifest, the layers their chains name, the blocks
 *    those layers name. A manifest or live layer that cannot be read stops
 *    gc before it deletes anything (`remote check` says what is wrong).
 * 2. Every index is read from the bucket (not the cache). A block may have
 *    several places; each live block is kept in one, the pack holding the
 *    most live blocks (so a block a sparse pack shares with a full one is
 *    not copied).
 * 3. A pack keeping no live block is dead. A pack whose kept fragments fill
 *    less than `repackBelow` of it is copied: its kept fragments, as they
 *    are (checked against their digests on the way), into new packs, then
 *    one new index naming them.
 * 4. Every index naming a dead or copied pack is replaced by one naming the
 *    rest of its entries (none: just deleted): the new one is written
 *    before the old one goes.
 * 5. Only then the dead and copied packs, then unreachable layers.
 *
 * Each step's writes complete before the next step's deletes, so a gc
 * killed anywhere leaves every live block in a pack an index names: the
 * bucket holds extra copies or extra indexes, which the next gc removes.
 * Manifests are never deleted here (`remote delete` does that).
 */
import { corrupt, isStrataError } from '../errors.js';
import { faultDelay, faultPoint } from '../store/faults.js';
import type { CodecSpec } from '../store/codecs.js';
import { decodeFragment, planRanges } from './fetch.js';
import { encodeIndex, type BlockPlace } from './index-file.js';
import { digestsOf } from './layer-file.js';
import { sha256Hex } from './layout.js';
import { lockForGc } from './locks.js';
import { makePacker } from './packer.js';
import { mapLimit } from './pool.js';
import { listIds, listManifests, readIndex, readLayer, readManifest, syncIndexes, type Remote } from './remote.js';

export interface RemoteGcOptions {
  /** Report what would be done; change nothing. */
  dryRun?: boolean;
  /** Repack a pack whose live fragments fill less than this share of it (default 0.5, ZeroFS's rule). 0: never. */
  repackBelow?: number;
  packBytes?: number;
  compress?: CodecSpec | null;
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
}

const SMALL_GETS = 8;

const UNTIL_CLEAN = 'gc deletes nothing until remote check is clean';
/** A damaged object stops gc before it deletes anything; the message says so. */
const untilClean = (e: unknown): never => {
  throw isStrataError(e, 'E_CORRUPT') ? corrupt(`${e.message}; ${UNTIL_CLEAN}`, e.data) : e;
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
    const manifests = await mapLimit(await listManifests(remote), SMALL_GETS, (m) => readManifest(remote, m.image, m.id).catch(untilClean));
    const liveLayers = new Set(manifests.flatMap((m) => m.chain.map((l) => l.layer)));
    const layerObjects = await listIds(remote, 'layers');
    const present = new Set(layerObjects.map((o) => o.id));
    for (const id of liveLayers) if (!present.has(id)) throw corrupt(`remote ${remote.config.name}: layer ${id} that a manifest names is missing from ${where}; ${UNTIL_CLEAN}`, { layer: id });
    const live = new Set<string>();
    await mapLimit([...liveLayers], SMALL_GETS, async (id) => {
      for (const d of digestsOf(await readLayer(remote, id).catch(untilClean))) live.add(d);
    });

    // 2. Where every block is, from the bucket's own indexes.
    const packObjects = new Map((await listIds(remote, 'packs')).map((o) => [o.id, o.size]));
    const indexIds = (await listIds(remote, 'indexes')).map((o) => o.id);
    const indexes = await mapLimit(indexIds, SMALL_GETS, async (id) => ({ id, places: await readIndex(remote, id).catch(untilClean) }));
    const holders = new Map<string, BlockPlace[]>();
    const liveBytes = new Map<string, number>();
    for (const { places } of indexes) {
      for (const p of places) {
        if (!packObjects.has(p.pack)) continue;
        const hex = p.digest.toString('hex');
        if (!live.has(hex)) continue;
        let l = holders.get(hex);
        if (!l) holders.set(hex, (l = []));
        if (l.some((q) => q.pack === p.pack)) continue;
        l.push(p);
        liveBytes.set(p.pack, (liveBytes.get(p.pack) ?? 0) + p.length);
      }
    }
    // Each live block kept once: in the pack most of which is live (ties: the smaller id), so a
    // copy a killed gc made wins over the sparse pack it was copied from.
    const density = (pack: string) => liveBytes.get(pack)! / packObjects.get(pack)!;
    const kept = new Map<string, BlockPlace[]>();
    for (const l of holders.values()) {
      const best = l.reduce((a, b) => {
        const da = density(a.pack);
        const db = density(b.pack);
        return db > da || (db === da && b.pack < a.pack) ? b : a;
      });
      let k = kept.get(best.pack);
      if (!k) kept.set(best.pack, (k = []));
      k.push(best);
    }

    // 3. Dead packs, sparse packs.
    const dead: string[] = [];
    const sparse: string[] = [];
    for (const [id, size] of packObjects) {
      const k = kept.get(id);
      if (!k) dead.push(id);
      else if (k.reduce((n, p) => n + p.length, 0) < repackBelow * size) sparse.push(id);
    }
    const gone = new Set([...dead, ...sparse]);
    const stale = (p: BlockPlace) => gone.has(p.pack) || !packObjects.has(p.pack);
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
    };
    if (opts.dryRun) {
      result.indexes.rewritten = indexes.filter((ix) => ix.places.some(stale)).length;
      result.bytes.after = before - result.bytes.deleted;
      return result;
    }

    // Copy what the sparse packs keep, fragments as they are, then the index naming the copies.
    if (sparse.length > 0) {
      const packer = makePacker(remote, { packBytes: opts.packBytes, compress: opts.compress });
      for (const id of sparse) {
        for (const r of planRanges(kept.get(id)!, 64 * 1024, 8 * 1024 * 1024)) {
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
      const bytes = encodeIndex(places);
      await bucket.put(keys.index(sha256Hex(bytes)), bytes);
      result.packs.written = packer.stats.packs;
      result.bytes.written = packer.stats.packedBytes;
      result.indexes.written++;
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
