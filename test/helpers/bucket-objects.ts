/**
 * Objects a hostile writer puts into a bucket, named as strata names them
 * (by content), for tests that hand them to the real CLI: layers with any
 * runs, indexes and packs with any fragments, manifests with any fields.
 */
import { encodeIndex, encodePackTrailer, type BlockPlace } from '../../src/remote/objects/index-file.js';
import { encodeLayer, type LayerRun } from '../../src/remote/objects/layer-file.js';
import { keysFor, sha256Hex } from '../../src/remote/objects/layout.js';
import { MANIFEST_FORMAT } from '../../src/remote/objects/manifest.js';
import type { Bucket } from '../../src/remote/bucket.js';
import { openBucket } from '../../src/remote/s3.js';
import { rgw } from './rgw.js';

const keys = keysFor('');

/** The bucket as a writer other than strata sees it; close it after. */
export const rawBucket = (name: string): Bucket => openBucket({ bucket: name, endpoint: rgw().endpoint });

/** Puts a layer object of these runs and digests; returns its id. */
export async function putLayer(b: Bucket, virtualSize: number, runs: LayerRun[], digests: Buffer = Buffer.alloc(0)): Promise<string> {
  const bytes = encodeLayer({ virtualSize, runs, digests });
  const id = sha256Hex(bytes);
  await b.put(keys.layer(id), bytes);
  return id;
}

/** Puts a pack of these fragments (back to back, then its trailer) and an index naming them; returns the pack's places. */
export async function putPackAndIndex(b: Bucket, frags: { data: Buffer; digest: Buffer; codec: number }[]): Promise<BlockPlace[]> {
  let offset = 0;
  const entries = frags.map((f) => {
    const e = { digest: f.digest, offset, length: f.data.length, codec: f.codec, hint: 0 };
    offset += f.data.length;
    return e;
  });
  const body = Buffer.concat([...frags.map((f) => f.data), encodePackTrailer(entries)]);
  const pack = sha256Hex(body);
  await b.put(keys.pack(pack), body);
  const places = entries.map((e) => ({ ...e, pack }));
  const index = encodeIndex(places);
  await b.put(keys.index(sha256Hex(index)), index);
  return places;
}

/** Puts any bytes under index/ by their hash (a damaged or hostile index); returns the key. */
export async function putRawIndex(b: Bucket, bytes: Buffer): Promise<string> {
  const key = keys.index(sha256Hex(bytes));
  await b.put(key, bytes);
  return key;
}

export interface ChainEntry {
  layer: string;
  name: string;
  virtualSize: number;
  blocks: number;
}

/** A manifest object as push writes it, with `fields` overriding any of its fields. */
export function manifestBytes(image: string, chain: ChainEntry[], fields: Record<string, unknown> = {}): Buffer {
  const m = {
    format: MANIFEST_FORMAT,
    image,
    pushedAt: '2026-12-01T00:00:00.000Z',
    host: 'elsewhere',
    chain: chain.map((c, i) => ({ layer: c.layer, name: c.name, kind: i === 0 ? 'base' : 'layer', virtualSize: c.virtualSize, labels: {}, blocks: c.blocks })),
    ...fields,
  };
  return Buffer.from(JSON.stringify(m, null, 1) + '\n');
}

/** Puts manifest bytes under manifests/IMAGE/ by their hash; returns the key. */
export async function putManifest(b: Bucket, image: string, bytes: Buffer): Promise<string> {
  const key = keys.manifest(image, sha256Hex(bytes));
  await b.put(key, bytes);
  return key;
}
