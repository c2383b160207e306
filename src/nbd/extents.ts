/**
 * Turns device.extents() into runs that tile a request exactly, in the two
 * shapes NBD needs: read chunks (data vs reads-as-zero) and base:allocation
 * status descriptors.
 *
 * A device should already return maximal, ordered runs covering the range;
 * this module does not trust that blindly. Anything outside the request is
 * clipped and any gap is reported as data, the answer that is always safe
 * (the client reads it and gets the real bytes).
 */
import { appendExtent, type BlockDevice, type ChangeRun, type ExtentKind } from '../image/device.js';
import { STATE_DIRTY, STATE_HOLE, STATE_ZERO, type StatusDescriptor } from './protocol.js';

export interface Run {
  offset: number;
  length: number;
  kind: ExtentKind;
}

export function runsFor(device: BlockDevice, offset: number, length: number): Run[] {
  const end = offset + length;
  const runs: Run[] = [];
  let at = offset;
  const push = (o: number, l: number, kind: ExtentKind) => appendExtent(runs, { offset: o, length: l, kind });
  for (const e of device.extents(offset, length)) {
    const s = Math.max(e.offset, at);
    const t = Math.min(e.offset + e.length, end);
    if (t <= s) continue;
    if (s > at) push(at, s - at, 'data');
    push(s, t - s, e.kind);
    at = t;
    if (at >= end) break;
  }
  if (at < end) push(at, end - at, 'data');
  return runs;
}

/**
 * base:allocation flags. A strata ZERO extent stores no block, exactly like a
 * hole: both are unallocated and read as zeros, so both are HOLE|ZERO (this
 * is also how qemu-nbd reports qcow2 zero clusters). Only stored data is 0.
 */
export function allocationFlags(kind: ExtentKind): number {
  return kind === 'data' ? 0 : STATE_HOLE | STATE_ZERO;
}

export function statusDescriptors(runs: Run[], maxDescriptors: number): StatusDescriptor[] {
  const out: StatusDescriptor[] = [];
  for (const r of runs) {
    const flags = allocationFlags(r.kind);
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += r.length;
    else {
      if (out.length === maxDescriptors) break;
      out.push({ length: r.length, flags });
    }
  }
  return out;
}

/** qemu:dirty-bitmap: descriptors: flag 1 where a block may have changed, 0 where it has not. Runs arrive merged and at most as many as allowed. */
export function bitmapDescriptors(runs: readonly ChangeRun[]): StatusDescriptor[] {
  return runs.map((r) => ({ length: r.length, flags: r.changed ? STATE_DIRTY : 0 }));
}
