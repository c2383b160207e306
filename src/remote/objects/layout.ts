/**
 * The bucket's layout: what a remote holds, and the names of its objects.
 *
 * Words (restic's model, for disk blocks):
 *
 * - block digest: SHA-256 of a block's 4 KiB of uncompressed data, the
 *   block's identity in every store and bucket. (A store's own XXH64 is cut
 *   to 53 bits and only finds candidates; a bucket shared by many hosts
 *   needs a name no two different blocks can share.)
 * - pack: an immutable object of many blocks, each compressed on its own
 *   (a fragment: zstd, or the raw 4 KiB where it does not shrink), then a
 *   trailer listing them. Multi-MiB, never one object per block: every RGW
 *   object costs a bucket-index entry.
 * - index: an immutable object naming, for each block a push uploaded,
 *   the pack, offset, length and codec of its fragment, and its 53-bit
 *   XXH64 (a hint by which another store finds the block among its own).
 * - layer: an immutable object holding one frozen image's own map (its
 *   runs of data and zero blocks, data as digests), without name or parent,
 *   so the same layer pushed from two hosts is one object.
 * - manifest: one object per push of an image: its name, and its chain of
 *   layers base first, each with the name, kind and labels it had.
 *
 * Keys, under the remote's prefix:
 *
 *   packs/<sha256 of the object>
 *   index/<sha256 of the object>
 *   layers/<sha256 of the object>
 *   manifests/<image name>/<sha256 of the object>.json
 *   locks/push/<host>-<pid>-<random>, locks/gc   (locks.ts: gc runs alone)
 *   dependents/<image>/<manifest id>/<store id>.json   (dependents.ts: which
 *       stores hold lazy clones of which manifests; mutable, not content-named)
 *
 * Every name is derived from the content, so two hosts pushing the same
 * thing at once write the same bytes under the same key (or, for packs,
 * waste a duplicate): never a conflict, never a lock.
 *
 * Write order (push.ts): packs, then the index naming them, then layers,
 * then the manifest, each only after everything before it is complete. A
 * reader that finds a manifest finds its layers, their blocks in the
 * indexes, and those in packs.
 */
import crypto, { createHash } from 'node:crypto';

export const PACK_DIR = 'packs/';
export const INDEX_DIR = 'index/';
export const LAYER_DIR = 'layers/';
export const MANIFEST_DIR = 'manifests/';
export const DEPENDENT_DIR = 'dependents/';

// crypto.hash (Node 20.12+, 21.7+) skips the Hash object: ~20% faster per 4 KiB block, and push hashes every block.
// Typed as optional: older Node 20 releases lack it.
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;
export const sha256 = oneShot ? (data: Uint8Array): Buffer => oneShot('sha256', data, 'buffer') : (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();
export const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

export const HEX_ID = /^[0-9a-f]{64}$/;

/** A remote's keys, all under its prefix ('' or 'some/path/'). */
export interface Keys {
  pack(id: string): string;
  index(id: string): string;
  layer(id: string): string;
  manifest(image: string, id: string): string;
  dependent(image: string, manifest: string, store: string): string;
  /** Prefixes to list. */
  readonly packs: string;
  readonly indexes: string;
  readonly layers: string;
  readonly manifests: string;
  manifestsOf(image: string): string;
  readonly dependents: string;
  dependentsOf(image: string): string;
  /** The id (or image/id) from a listed key, or undefined for a key that is not ours. */
  idOf(key: string, dir: string): string | undefined;
}

export function keysFor(prefix: string): Keys {
  const p = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return {
    pack: (id) => `${p}${PACK_DIR}${id}`,
    index: (id) => `${p}${INDEX_DIR}${id}`,
    layer: (id) => `${p}${LAYER_DIR}${id}`,
    manifest: (image, id) => `${p}${MANIFEST_DIR}${image}/${id}.json`,
    packs: `${p}${PACK_DIR}`,
    indexes: `${p}${INDEX_DIR}`,
    layers: `${p}${LAYER_DIR}`,
    manifests: `${p}${MANIFEST_DIR}`,
    manifestsOf: (image) => `${p}${MANIFEST_DIR}${image}/`,
    dependent: (image, manifest, store) => `${p}${DEPENDENT_DIR}${image}/${manifest}/${store}.json`,
    dependents: `${p}${DEPENDENT_DIR}`,
    dependentsOf: (image) => `${p}${DEPENDENT_DIR}${image}/`,
    idOf(key, dir) {
      if (!key.startsWith(p + dir)) return undefined;
      return key.slice(p.length + dir.length);
    },
  };
}
