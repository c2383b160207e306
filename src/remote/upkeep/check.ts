/**
 * strata remote check: is every pushed image whole in the bucket?
 *
 * Always (metadata only: a few small GETs per image, one ranged GET of
 * each pack's end):
 * - each manifest matches its name and decodes, and each layer its chain
 *   names is there, matches its name, decodes and has the manifest's size;
 * - each index matches its name and decodes, and each place it names is
 *   in a pack that is there and whose own trailer lists it (claims.ts): an
 *   index that says otherwise is reported, and its places count for nothing;
 * - each block a live layer names has such a confirmed place.
 * With readData, every pack is downloaded whole: it must match its name,
 * and every fragment its trailer lists must decompress to the block its
 * digest names.
 *
 * Waste (a killed push's packs, what gc has yet to collect, stale locks)
 * is counted, not a problem. Takes no lock and changes nothing, so it can
 * run beside pushes; beside a running gc it may see a pack gone that an
 * old index still names for a moment, which a second run settles.
 */
import { StrataError, bucketCorrupt } from '../../errors.js';
import { confirmed, falseClaims, readTrailers, trailerOf, type RemoteProblem, type Trailer } from '../objects/claims.js';
import { decodeFragment } from '../objects/fetch.js';
import { decodePackTrailer, MAX_PACK_BYTES, type BlockPlace } from '../objects/index-file.js';
import { digestsOf } from '../objects/layer-file.js';
import { sha256Hex } from '../objects/layout.js';
import { mapLimit } from '../pool.js';
import { listIds, listManifests, readIndex, readLayer, readManifest, type Remote } from '../remote.js';

export type { RemoteProblem };

export interface RemoteCheckResult {
  remote: string;
  readData: boolean;
  manifests: number;
  layers: number;
  indexes: number;
  packs: number;
  /** Distinct blocks the manifests reach. */
  blocks: number;
  /** Bytes downloaded to check packs (readData). */
  bytesRead: number;
  problems: RemoteProblem[];
  waste: { packs: number; bytes: number; layers: number };
  status: 'clean' | 'damaged';
}

const GETS = 8;

function asProblem(e: unknown, object: RemoteProblem['object'], id: string): RemoteProblem {
  if (e instanceof StrataError && (e.code === 'E_CORRUPT' || e.code === 'E_REMOTE_MISSING' || e.code === 'E_NOT_FOUND')) return { object, id, message: e.message };
  throw e; // the bucket cannot be read: not a finding about its contents
}

export async function checkRemote(remote: Remote, opts: { readData?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<RemoteCheckResult> {
  const { bucket, keys } = remote;
  const name = remote.config.name;
  const problems: RemoteProblem[] = [];

  const manifests = await listManifests(remote);
  const layerSizes = new Map<string, number>();
  await mapLimit(manifests, GETS, async ({ image, id }) => {
    try {
      const m = await readManifest(remote, image, id);
      for (const l of m.chain) layerSizes.set(l.layer, l.virtualSize);
    } catch (e) {
      problems.push(asProblem(e, 'manifest', `${image}/${id}`));
    }
  });

  const layerObjects = new Set((await listIds(remote, 'layers')).map((o) => o.id));
  const live = new Set<string>();
  await mapLimit([...layerSizes], GETS, async ([id, size]) => {
    if (!layerObjects.has(id)) {
      problems.push({ object: 'layer', id, message: `layer ${id} is missing (a manifest names it)` });
      return;
    }
    try {
      for (const d of digestsOf(await readLayer(remote, id, size))) live.add(d);
    } catch (e) {
      problems.push(asProblem(e, 'layer', id));
    }
  });

  const packSizes = new Map((await listIds(remote, 'packs')).map((o) => [o.id, o.size]));
  const indexIds = (await listIds(remote, 'indexes')).map((o) => o.id);
  const indexes: { id: string; places: BlockPlace[] }[] = [];
  await mapLimit(indexIds, GETS, async (id) => {
    try {
      indexes.push({ id, places: await readIndex(remote, id) });
    } catch (e) {
      problems.push(asProblem(e, 'index', id));
    }
  });

  // What each pack holds, by its own trailer: read from its end, or with readData from the whole
  // pack, which must also match its name and hold every fragment its trailer lists.
  let trailers = new Map<string, Trailer>();
  let bytesRead = 0;
  if (opts.readData) {
    const total = [...packSizes.values()].reduce((n, s) => n + s, 0);
    opts.onProgress?.(0, total);
    // Two at a time: each pack is held whole while its fragments are checked.
    await mapLimit([...packSizes.keys()], 2, async (id) => {
      try {
        const body = await bucket.get(keys.pack(id), MAX_PACK_BYTES);
        bytesRead += body.length;
        opts.onProgress?.(bytesRead, total);
        const listed = decodePackTrailer(body, id);
        trailers.set(id, trailerOf(listed));
        if (sha256Hex(body) !== id) throw bucketCorrupt(`pack ${id} does not match its name`);
        for (const p of listed) decodeFragment(p, body, p.offset);
      } catch (e) {
        problems.push(asProblem(e, 'pack', id));
      }
    });
  } else {
    const read = await readTrailers(remote, packSizes);
    trailers = read.trailers;
    problems.push(...read.problems);
  }
  // Beside a running gc: a pack listed by no listing above may have been written since (a repack's
  // copy), and an index may be gone (replaced). Neither is a false claim.
  const unlisted = new Set(indexes.flatMap((ix) => ix.places.map((p) => p.pack)).filter((p) => !packSizes.has(p)));
  const since = new Set<string>();
  await mapLimit([...unlisted], GETS, async (p) => {
    if (await bucket.has(keys.pack(p))) since.add(p);
  });
  const unknown = new Set([...packSizes.keys()].filter((p) => !trailers.has(p)).concat([...since]));
  await mapLimit(indexes, GETS, async ({ id, places }) => {
    const f = falseClaims(id, places, packSizes, trailers, unknown);
    if (f && (await bucket.has(keys.index(id)))) problems.push(f);
  });

  // Placed: a place its pack's trailer confirms (or in a pack written since the listing).
  const placed = new Set<string>();
  const named = new Map<string, BlockPlace[]>();
  for (const { places } of indexes) {
    for (const p of places) {
      if (!since.has(p.pack) && !confirmed(trailers, p)) continue;
      placed.add(p.digest.toString('hex'));
      let l = named.get(p.pack);
      if (!l) named.set(p.pack, (l = []));
      l.push(p);
    }
  }
  let unplaced = 0;
  for (const d of live) {
    if (placed.has(d)) continue;
    if (unplaced++ < 20) problems.push({ object: 'block', id: d, message: `block ${d} is in no pack (a live layer names it)` });
  }
  if (unplaced > 20) problems.push({ object: 'block', id: '', message: `and ${unplaced - 20} more blocks in no pack` });

  const livePacks = new Set<string>();
  for (const [pack, l] of named) if (l.some((p) => live.has(p.digest.toString('hex')))) livePacks.add(pack);
  const wastePacks = [...packSizes].filter(([id]) => !livePacks.has(id));
  return {
    remote: name,
    readData: opts.readData === true,
    manifests: manifests.length,
    layers: layerObjects.size,
    indexes: indexIds.length,
    packs: packSizes.size,
    blocks: live.size,
    bytesRead,
    problems,
    waste: { packs: wastePacks.length, bytes: wastePacks.reduce((n, [, s]) => n + s, 0), layers: [...layerObjects].filter((id) => !layerSizes.has(id)).length },
    status: problems.length === 0 ? 'clean' : 'damaged',
  };
}
