/**
 * Manifest objects: one per push of an image, JSON. Pure encode and
 * decode. A bucket is shared with other hosts, so a manifest is checked
 * like any input: names must be valid image names, layers 64 hex digits.
 */
import { corrupt } from '../errors.js';
import { imageName } from '../store/names.js';
import type { ImageKind } from '../store/types.js';
import { HEX_ID, sha256Hex } from './layout.js';

export const MANIFEST_FORMAT = 'strata-manifest/1';

export interface ManifestLayer {
  /** Layer object id. */
  layer: string;
  /** The image's name where it was pushed from, kept when pulled. */
  name: string;
  kind: ImageKind;
  virtualSize: number;
  labels: Record<string, string>;
  /** Data blocks in the layer's own map. */
  blocks: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  image: string;
  pushedAt: string;
  host: string;
  /** Base first; the last is the image itself. */
  chain: ManifestLayer[];
}

export function encodeManifest(m: Manifest): { bytes: Buffer; id: string } {
  const bytes = Buffer.from(JSON.stringify(m, null, 1) + '\n');
  return { bytes, id: sha256Hex(bytes) };
}

export function decodeManifest(b: Buffer, name: string): Manifest {
  const bad = (why: string) => corrupt(`remote manifest ${name} is malformed: ${why}`, { manifest: name });
  let m: Manifest;
  try {
    m = JSON.parse(b.toString('utf8')) as Manifest;
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (m?.format !== MANIFEST_FORMAT) throw bad(`format ${JSON.stringify(m?.format)}, this strata reads ${MANIFEST_FORMAT}`);
  if (!Array.isArray(m.chain) || m.chain.length === 0) throw bad('no chain');
  const valid = (f: () => unknown) => {
    try {
      f();
      return true;
    } catch {
      return false;
    }
  };
  if (!valid(() => imageName(m.image))) throw bad(`image name ${JSON.stringify(m.image)}`);
  m.chain.forEach((l, i) => {
    if (!HEX_ID.test(l?.layer ?? '')) throw bad(`chain[${i}] layer ${JSON.stringify(l?.layer)}`);
    if (!valid(() => imageName(l.name))) throw bad(`chain[${i}] name ${JSON.stringify(l.name)}`);
    if (l.kind !== (i === 0 ? 'base' : 'layer')) throw bad(`chain[${i}] kind ${JSON.stringify(l.kind)}`);
    if (!Number.isSafeInteger(l.virtualSize) || l.virtualSize < 0) throw bad(`chain[${i}] virtual size`);
    if (typeof l.labels !== 'object' || l.labels === null || Object.values(l.labels).some((v) => typeof v !== 'string')) throw bad(`chain[${i}] labels`);
  });
  if (m.chain[m.chain.length - 1].name !== m.image) throw bad('the chain does not end at the image');
  return m;
}
