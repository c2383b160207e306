/**
 * snapshots.ts: the internal snapshot table (docs/interop/qcow2.txt, "Snapshots").
 *
 * Entries are variable length (fixed 40 bytes + extra data + id + name, padded
 * to 8); every length is bounded and every read checked against EOF.
 */
import { inputError } from '../../errors.js';
import { ImageFile } from './file.js';
import { MAX_VIRTUAL_SIZE, Qcow2Header, u64 } from './header.js';

/** qemu's limits on one entry's extra data and on the whole table. */
const MAX_EXTRA_DATA = 1024;
const MAX_TABLE_BYTES = 64 * 1024 * 1024;

export interface Qcow2Snapshot {
  id: string;
  name: string;
  l1TableOffset: number;
  l1Size: number;
  virtualSize: number;
  date: Date;
  vmClock: number;
}

export function parseSnapshots(file: ImageFile, h: Qcow2Header): Qcow2Snapshot[] {
  const p = file.path;
  const out: Qcow2Snapshot[] = [];
  let off = h.snapshotsOffset;
  for (let i = 0; i < h.nbSnapshots; i++) {
    const what = `snapshot table entry ${i}`;
    const b = file.readAt(off, 40, what);
    const l1TableOffset = u64(b, 0);
    const l1Size = b.readUInt32BE(8);
    const idLen = b.readUInt16BE(12);
    const nameLen = b.readUInt16BE(14);
    const secs = b.readUInt32BE(16);
    const nsecs = b.readUInt32BE(20);
    const vmClock = u64(b, 24);
    const extraLen = b.readUInt32BE(36);
    if (extraLen > MAX_EXTRA_DATA) throw inputError(`${p}: ${what}: extra data of ${extraLen} bytes exceeds ${MAX_EXTRA_DATA}`);
    const rest = file.readAt(off + 40, extraLen + idLen + nameLen, what);
    let virtualSize = h.size;
    if (extraLen >= 16) virtualSize = u64(rest, 8);
    if (virtualSize > MAX_VIRTUAL_SIZE) throw inputError(`${p}: ${what}: virtual size ${virtualSize} exceeds the 2^53 byte limit`);
    // Version 3 entries should carry the virtual size; like qemu, fall back to the image's size when they do not.
    out.push({
      id: rest.subarray(extraLen, extraLen + idLen).toString('utf8'),
      name: rest.subarray(extraLen + idLen).toString('utf8'),
      l1TableOffset,
      l1Size,
      virtualSize,
      date: new Date(secs * 1000 + Math.floor(nsecs / 1e6)),
      vmClock,
    });
    off += Math.ceil((40 + extraLen + idLen + nameLen) / 8) * 8;
    if (off - h.snapshotsOffset > MAX_TABLE_BYTES) throw inputError(`${p}: snapshot table exceeds ${MAX_TABLE_BYTES} bytes`);
  }
  return out;
}

/** Finds a snapshot by id first, then by name, as qemu-img does. */
export function findSnapshot(snaps: Qcow2Snapshot[], idOrName: string): Qcow2Snapshot | undefined {
  return snaps.find((s) => s.id === idOrName) ?? snaps.find((s) => s.name === idOrName);
}
