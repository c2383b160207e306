/**
 * strata remote check: is every pushed image whole in the bucket?
 *
 * Always (metadata only, a few small GETs per image):
 * - each manifest matches its name and decodes, and each layer its chain
 *   names is there, matches its name, decodes and has the manifest's size;
 * - each index matches its name and decodes, and each place it names lies
 *   inside a pack that is there;
 * - each block a live layer names has a place in a pack that is there.
 * With readData, every pack is downloaded whole: it must match its name,
 * its trailer must list what the indexes say it holds, and every fragment
 * must decompress to the block its digest names.
 *
 * Waste (a killed push's packs, what gc has yet to collect, stale locks)
 * is counted, not a problem. Takes no lock and changes nothing, so it can
 * run beside pushes; beside a running gc it may see a pack gone that an
 * old index still names for a moment, which a second run settles.
 */
import { StrataError } from '../errors.js';
import { decodeFragment } from './fetch.js';
import { decodePackTrailer, MAX_PACK_BYTES, type BlockPlace } from './index-file.js';
import { digestsOf } from './layer-file.js';
import { sha256Hex } from './layout.js';
import { mapLimit } from './pool.js';
import { listIds, listManifests, readIndex, readLayer, readManifest, type Remote } from './remote.js';

export interface RemoteProblem {
  /** What kind of object is wrong. */
  object: 'manifest' | 'layer' | 'index' | 'pack' | 'block';
  id: string;
  message: string;
}

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
  if (e instanceof StrataError && (e.code === 'E_CORRUPT' || e.code === 'E_NOT_FOUND')) return { object, id, message: e.message };
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
  const placed = new Set<string>();
  const named = new Map<string, BlockPlace[]>();
  await mapLimit(indexIds, GETS, async (id) => {
    let places: BlockPlace[];
    try {
      places = await readIndex(remote, id);
    } catch (e) {
      problems.push(asProblem(e, 'index', id));
      return;
    }
    for (const p of places) {
      const size = packSizes.get(p.pack);
      if (size === undefined) continue; // gc deletes packs after their indexes are replaced; the block may be placed elsewhere
      if (p.offset + p.length > size) {
        problems.push({ object: 'index', id, message: `index ${id} places block ${p.digest.toString('hex')} at ${p.offset}+${p.length} in pack ${p.pack} of ${size} bytes` });
        continue;
      }
      placed.add(p.digest.toString('hex'));
      let l = named.get(p.pack);
      if (!l) named.set(p.pack, (l = []));
      l.push(p);
    }
  });
  let unplaced = 0;
  for (const d of live) {
    if (placed.has(d)) continue;
    if (unplaced++ < 20) problems.push({ object: 'block', id: d, message: `block ${d} is in no pack (a live layer names it)` });
  }
  if (unplaced > 20) problems.push({ object: 'block', id: '', message: `and ${unplaced - 20} more blocks in no pack` });

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
        if (sha256Hex(body) !== id) throw new StrataError('E_CORRUPT', `pack ${id} does not match its name`);
        const trailer = new Map(decodePackTrailer(body, id).map((p) => [`${p.digest.toString('hex')}@${p.offset}`, p]));
        for (const p of trailer.values()) decodeFragment(p, body, p.offset);
        for (const p of named.get(id) ?? []) {
          const t = trailer.get(`${p.digest.toString('hex')}@${p.offset}`);
          if (!t || t.length !== p.length || t.codec !== p.codec) throw new StrataError('E_CORRUPT', `pack ${id} does not hold block ${p.digest.toString('hex')} where an index says (offset ${p.offset})`);
        }
      } catch (e) {
        problems.push(asProblem(e, 'pack', id));
      }
    });
  }

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
