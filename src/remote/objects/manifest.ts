/**
 * Manifest objects: one per push of an image, JSON. Pure encode and
 * decode. A bucket is shared with other hosts, so a manifest is checked
 * like any input, every field: names must be valid image names, layers 64
 * hex digits, sizes and counts whole numbers in range, the time an ISO
 * 8601 instant, the host a short string (printed escaped: untrusted.ts),
 * labels strings, the chain no deeper than a qcow2 backing chain may be.
 */
import { bucketCorrupt } from '../../errors.js';
import { storedName, BLOCK_SIZE, MAX_CHAIN_DEPTH, MAX_VIRTUAL_SIZE, type ImageKind } from '../../store/core/index.js';
import { HEX_ID, sha256Hex } from './layout.js';

/**
 * The most a manifest object is read at: MAX_CHAIN_DEPTH layers of a few
 * hundred bytes each, and room for labels (an OCI image's run to a few KiB).
 */
export const MAX_MANIFEST_BYTES = 4 << 20;

/** A host name as os.hostname() gives it is at most 64 bytes (HOST_NAME_MAX); room for FQDNs. */
const MAX_HOST = 255;
/** What new Date().toISOString() writes, which is what push records. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

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
  const bad = (why: string) => bucketCorrupt(`remote manifest ${name} is malformed: ${why}`, { manifest: name });
  // A value quoted in a message: short, whatever the object holds.
  const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);
  let m: Manifest;
  try {
    m = JSON.parse(b.toString('utf8')) as Manifest;
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (m?.format !== MANIFEST_FORMAT) throw bad(`format ${quote(m?.format)}, this strata reads ${MANIFEST_FORMAT}`);
  if (!Array.isArray(m.chain) || m.chain.length === 0) throw bad('no chain');
  if (m.chain.length > MAX_CHAIN_DEPTH) throw bad(`a chain of ${m.chain.length} layers, over the ${MAX_CHAIN_DEPTH} strata takes`);
  if (typeof m.pushedAt !== 'string' || !ISO_INSTANT.test(m.pushedAt) || Number.isNaN(Date.parse(m.pushedAt))) throw bad(`pushedAt ${quote(m.pushedAt)} is not an ISO 8601 time`);
  if (typeof m.host !== 'string' || m.host.length > MAX_HOST) throw bad(`host is not a string of at most ${MAX_HOST} characters`);
  const valid = (f: () => unknown) => {
    try {
      f();
      return true;
    } catch {
      return false;
    }
  };
  if (!valid(() => storedName(m.image))) throw bad(`image name ${quote(m.image)}`);
  m.chain.forEach((l, i) => {
    if (typeof l?.layer !== 'string' || !HEX_ID.test(l.layer)) throw bad(`chain[${i}] layer ${quote(l?.layer)}`);
    if (!valid(() => storedName(l.name))) throw bad(`chain[${i}] name ${quote(l.name)}`);
    if (l.kind !== (i === 0 ? 'base' : 'layer')) throw bad(`chain[${i}] kind ${quote(l.kind)}`);
    if (!Number.isSafeInteger(l.virtualSize) || l.virtualSize < 0 || l.virtualSize > MAX_VIRTUAL_SIZE) throw bad(`chain[${i}] virtual size`);
    if (!Number.isSafeInteger(l.blocks) || l.blocks < 0 || l.blocks > Math.ceil(l.virtualSize / BLOCK_SIZE)) throw bad(`chain[${i}] blocks`);
    if (typeof l.labels !== 'object' || l.labels === null || Array.isArray(l.labels) || Object.values(l.labels).some((v) => typeof v !== 'string')) throw bad(`chain[${i}] labels`);
  });
  if (m.chain[m.chain.length - 1].name !== m.image) throw bad('the chain does not end at the image');
  return m;
}
