/**
 * FaultyBlocks: a BlockBackend over another one that fails, tears, drops or
 * holds its writes and syncs where a plan says, as LevelDB's fault-injecting
 * Env wraps the real one. The engine never knows: the data-file code has no
 * fault probes, and a test (or STRATA_FAULT, through envFaultyBlocks) picks
 * the faults by wrapping the backend the store opens.
 */
import { BLOCK_SIZE, SLOTS_PER_FILE } from '../core/types.js';
import { faultAction, faultDelay, faultError, faultPoint } from '../core/faults.js';
import { StrataError } from '../../errors.js';
import { dataFileName, ioError, type BlockBackend } from './datafiles.js';

/** The errno an injected failure raises, as the file system would. */
export type InjectedErrno = 'ENOSPC' | 'EIO';

/**
 * What happens to one write call:
 * - fail: nothing is written, the call throws;
 * - tear: its first `blocks` blocks are written, then it throws (a write cut short by a full disk or a crash);
 * - drop: nothing is written and the call returns as if it had been (a lost write).
 */
export type WriteFault = { kind: 'fail'; code: InjectedErrno } | { kind: 'tear'; blocks: number; code: InjectedErrno } | { kind: 'drop' };

/** What happens to one sync: it fails, or is skipped and returns (the fdatasync a buggy build leaves out). */
export type SyncFault = { kind: 'fail'; code: InjectedErrno } | { kind: 'skip' };

/**
 * Asked at each write and sync; null lets the call through. A plan may also
 * hold the caller there (the STRATA_FAULT plan pauses through faults.ts).
 */
export interface BlockFaultPlan {
  /** `slots` are the slots the call writes, in order. */
  write?(slots: readonly number[]): WriteFault | null;
  sync?(): SyncFault | null;
}

/** The typed error an injected errno becomes, naming the data file of `slot`, as the real one would. */
function injected(code: InjectedErrno, slot: number, what: string): StrataError {
  const fileNo = Math.floor(slot / SLOTS_PER_FILE);
  return ioError(Object.assign(new Error(`${code}: injected`), { code }), dataFileName(fileNo), what);
}

/** The first `n` blocks of `buffers`, cut where block n ends. */
function firstBlocks(buffers: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = n * BLOCK_SIZE;
  for (const b of buffers) {
    if (left <= 0) break;
    const part = b.length <= left ? b : b.subarray(0, left);
    out.push(part);
    left -= part.length;
  }
  return out;
}

export function faultyBlocks(inner: BlockBackend, plan: BlockFaultPlan): BlockBackend {
  return {
    read: (first, count, into, at) => inner.read(first, count, into, at),
    readChecked: (first, count, into, at, expected) => inner.readChecked(first, count, into, at, expected),
    readFragment: (slot, offset, length, codec, into, at) => inner.readFragment(slot, offset, length, codec, into, at),

    write(first, buffers) {
      const count = buffers.reduce((n, b) => n + b.length, 0) / BLOCK_SIZE;
      const f = plan.write?.(Array.from({ length: count }, (_, i) => first + i));
      if (!f) return inner.write(first, buffers);
      if (f.kind === 'drop') return;
      const done = f.kind === 'tear' ? Math.min(f.blocks, count) : 0;
      if (done > 0) inner.write(first, firstBlocks(buffers, done));
      throw injected(f.code, first + done, 'write');
    },

    writeScattered(slots, blocks) {
      const f = plan.write?.(slots);
      if (!f) return inner.writeScattered(slots, blocks);
      if (f.kind === 'drop') return;
      const done = f.kind === 'tear' ? Math.min(f.blocks, slots.length) : 0;
      if (done > 0) inner.writeScattered(slots.slice(0, done), blocks.slice(0, done));
      throw injected(f.code, slots[Math.min(done, slots.length - 1)], 'write');
    },

    sync() {
      const f = plan.sync?.();
      if (!f) return inner.sync();
      if (f.kind === 'fail') throw injected(f.code, 0, 'sync');
    },

    startWriteback: () => inner.startWriteback(),
    release: (first, count) => inner.release(first, count),
    truncate: (slots) => inner.truncate(slots),
    diskUsage: () => inner.diskUsage(),
    close: () => inner.close(),
  };
}

/**
 * The plan STRATA_FAULT gives for the data-file points (datafile.write,
 * datafile.sync), or null when it names none: enospc fails every write
 * from the Nth on, skip leaves the syncs (or drops the writes) out, a kill
 * or pause stops the process at the Nth call, sleep and stop slow or hold it.
 */
function envPlan(): BlockFaultPlan | null {
  if (!faultAction('datafile.write') && !faultAction('datafile.sync')) return null;
  /** Runs the kill, pause, sleep or stop STRATA_FAULT asks for at `point`; returns the action. */
  const reach = (point: string) => {
    const action = faultAction(point);
    if (action === 'kill' || action === 'pause') faultPoint(point);
    else if (action === 'sleep' || action === 'stop') faultDelay(point);
    return action;
  };
  return {
    write() {
      const action = reach('datafile.write');
      if (action === 'skip') return { kind: 'drop' };
      const code = action === 'enospc' ? faultError('datafile.write') : null;
      return code ? { kind: 'fail', code } : null;
    },
    sync() {
      return reach('datafile.sync') === 'skip' ? { kind: 'skip' } : null;
    },
  };
}

/** `inner` itself, or wrapped in the faults STRATA_FAULT names at data-file points: what the store opens. */
export function envFaultyBlocks(inner: BlockBackend): BlockBackend {
  const plan = envPlan();
  return plan ? faultyBlocks(inner, plan) : inner;
}
