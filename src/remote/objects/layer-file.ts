/**
 * Layer objects: one frozen image's own map, blocks named by digest. Pure
 * encode and decode; a malformed object is E_CORRUPT naming it.
 *
 *   "STRATALY" u32 version=1 f64 virtual-size u32 runs
 *   runs × 16 bytes: f64 first-block u32 count u8 kind (0 zero, 1 data) u8[3] 0
 *   then 32 bytes of digest per data block, in run order
 *
 * Runs are ascending and do not overlap; blocks in no run inherit from the
 * parent. Canonical form (layers.ts writes it, so the same layer pushed from
 * two stores is the same object): adjacent runs of one kind are merged, and
 * a zero run is kept only where the parent has data to hide (a base has no
 * zero runs at all).
 *
 * A layer comes from a bucket others write to, so decode enforces the
 * canonical form it can see alone (runs in order, never empty, touching
 * runs of one kind merged, padding zero: the object re-encodes to its own
 * bytes); that each zero run hides data of the parent is checked where the
 * parent is known (zero-runs.ts). Work on a decoded layer is then bounded
 * by its runs and data blocks, never by its virtual size.
 */
import { bucketCorrupt } from '../../errors.js';
import { BLOCK_SIZE, MAX_VIRTUAL_SIZE } from '../../store/core/index.js';

export const RUN_ZERO = 0;
export const RUN_DATA = 1;

export interface LayerRun {
  first: number;
  count: number;
  kind: typeof RUN_ZERO | typeof RUN_DATA;
}

export interface LayerMap {
  virtualSize: number;
  runs: LayerRun[];
  /** 32 bytes per data block, in run order. */
  digests: Buffer;
}

const MAGIC = Buffer.from('STRATALY');
const HEADER_BYTES = 24;
const RUN_BYTES = 16;
/** The largest run: its count is a u32 (layers.ts splits longer ones). */
const MAX_RUN = 0xffffffff;

/**
 * The most a layer object is read at: 16 million data blocks (64 GiB of a
 * layer's own data) in the worst run layout. Runs are held as objects once
 * decoded, so this bounds memory, not only the download.
 */
export const MAX_LAYER_BYTES = 1 << 30;

/** The largest layer object of an image of `virtualSize` bytes: a run and a digest per block at most. */
export const layerBytesLimit = (virtualSize: number): number => Math.min(MAX_LAYER_BYTES, HEADER_BYTES + (RUN_BYTES + 32) * Math.ceil(virtualSize / BLOCK_SIZE));

/** The digests a layer names, as hex, in run order. */
export function digestsOf(m: Pick<LayerMap, 'digests'>): string[] {
  const out: string[] = [];
  for (let at = 0; at < m.digests.length; at += 32) out.push(m.digests.toString('hex', at, at + 32));
  return out;
}

export const dataBlocks = (m: Pick<LayerMap, 'runs'>): number => m.runs.reduce((n, r) => n + (r.kind === RUN_DATA ? r.count : 0), 0);

export function encodeLayer(m: LayerMap): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + RUN_BYTES * m.runs.length + m.digests.length);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt32LE(1, at);
  at = out.writeDoubleLE(m.virtualSize, at);
  at = out.writeUInt32LE(m.runs.length, at);
  for (const r of m.runs) {
    out.writeDoubleLE(r.first, at);
    out.writeUInt32LE(r.count, at + 8);
    out.writeUInt8(r.kind, at + 12);
    at += RUN_BYTES;
  }
  m.digests.copy(out, at);
  return out;
}

export function decodeLayer(b: Buffer, name: string): LayerMap {
  const bad = (why: string) => bucketCorrupt(`remote layer ${name} is malformed: ${why}`, { layer: name });
  if (b.length < HEADER_BYTES || !b.subarray(0, 8).equals(MAGIC)) throw bad('no STRATALY header');
  if (b.readUInt32LE(8) !== 1) throw bad(`version ${b.readUInt32LE(8)}, this strata reads 1`);
  const virtualSize = b.readDoubleLE(12);
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0 || virtualSize > MAX_VIRTUAL_SIZE) throw bad(`virtual size ${virtualSize}`);
  const n = b.readUInt32LE(20);
  let at = HEADER_BYTES;
  if (b.length < at + RUN_BYTES * n) throw bad('truncated runs');
  const blocks = Math.ceil(virtualSize / 4096);
  const runs: LayerRun[] = [];
  let end = 0;
  let data = 0;
  for (let i = 0; i < n; i++, at += RUN_BYTES) {
    const first = b.readDoubleLE(at);
    const count = b.readUInt32LE(at + 8);
    const kind = b.readUInt8(at + 12);
    if (!Number.isSafeInteger(first) || first < end || count === 0 || first + count > blocks || (kind !== RUN_ZERO && kind !== RUN_DATA)) {
      throw bad(`run ${i} (${first}+${count}, kind ${kind}) is out of order or out of range`);
    }
    const last = runs[i - 1];
    if (last && last.kind === kind && first === end && last.count < MAX_RUN) throw bad(`runs ${i - 1} and ${i} touch and are of one kind (not canonical)`);
    if (b.readUIntLE(at + 13, 3) !== 0) throw bad(`run ${i} has padding that is not zero`);
    end = first + count;
    if (kind === RUN_DATA) data += count;
    runs.push({ first, count, kind });
  }
  if (b.length !== at + 32 * data) throw bad(`${b.length - at} bytes of digests for ${data} data blocks`);
  const map = { virtualSize, runs, digests: Buffer.from(b.subarray(at)) };
  // One layer, one encoding: whatever the rules above let through must still be the bytes encodeLayer writes.
  if (!encodeLayer(map).equals(b)) throw bad('not in canonical form');
  return map;
}
