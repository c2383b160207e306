/**
 * A map segment: SEGMENT_ENTRIES entries. A segment whose entries are all
 * equal is kept as that one value (in memory and as a 4-byte BLOB), so a
 * 1 TiB write-zeroes or a fresh clone costs nothing per block.
 * Entries are little-endian u32 on disk; strata refuses big-endian hosts.
 */
import os from 'node:os';
import { storeCorrupt } from '../../errors.js';
import { SEGMENT_ENTRIES, type MapEntry } from '../core/types.js';

if (os.endianness() !== 'LE') throw new Error('strata needs a little-endian host');

export type Segment = MapEntry | Uint32Array;

export const segGet = (s: Segment, i: number): MapEntry => (typeof s === 'number' ? s : (s[i] as MapEntry));

export function segExpand(s: Segment): Uint32Array {
  return typeof s === 'number' ? new Uint32Array(SEGMENT_ENTRIES).fill(s) : s;
}

export function segClone(s: Segment): Segment {
  return typeof s === 'number' ? s : s.slice();
}

/** Collapses a segment whose entries are all equal to that value. */
export function segCompact(s: Segment): Segment {
  if (typeof s === 'number') return s;
  const v = s[0];
  for (let i = 1; i < s.length; i++) if (s[i] !== v) return s;
  return v as MapEntry;
}

export function segEncode(s: Segment): Buffer {
  const c = segCompact(s);
  if (typeof c === 'number') {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(c, 0);
    return b;
  }
  return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

export function segDecode(blob: Uint8Array, where: string): Segment {
  if (blob.length === 4) return (blob[0] | (blob[1] << 8) | (blob[2] << 16) | (blob[3] << 24)) >>> 0 as MapEntry;
  if (blob.length !== SEGMENT_ENTRIES * 4) throw storeCorrupt(`map segment ${where} has ${blob.length} bytes`);
  const a = new Uint32Array(SEGMENT_ENTRIES);
  new Uint8Array(a.buffer).set(blob);
  return a;
}

/** Overlays `own` on `below`: INHERIT entries take the value beneath. Never mutates its inputs. */
export function segOverlay(own: Segment, below: Segment): Segment {
  if (typeof own === 'number') return own === 0 ? below : own;
  const out = own.slice();
  if (typeof below === 'number') {
    if (below !== 0) for (let i = 0; i < out.length; i++) if (out[i] === 0) out[i] = below;
  } else {
    for (let i = 0; i < out.length; i++) if (out[i] === 0) out[i] = below[i];
  }
  return out;
}
