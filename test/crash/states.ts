/**
 * The states a power cut may leave a store in, built from recorded file
 * operations (recorder.ts) the way ALICE and CrashMonkey do.
 *
 * The model is POSIX's promise, no more: a file's content is durable up to
 * its last fsync/fdatasync; a write, truncate or punch after it may be kept,
 * dropped, or (a write) torn at 512-byte sectors, each independently; a name
 * (a create, unlink or rename) is durable only once its directory was
 * fsynced. Files are tracked as inodes, so a name unlinked and made again
 * (SQLite's WAL) keeps its old, durable inode until the directory is synced.
 *
 * A crash point is a place in the recorded order: "before operation i". For
 * each one, a bounded set of states: only what was synced; everything kept
 * with every name as the processes saw them (what a SIGKILL leaves); the
 * first half of the unsynced operations in order (a device that writes
 * in order); all but one, chosen by the seed (a reordering device); and a
 * seeded random subset with one write torn at sectors. Identical states are
 * built once.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../helpers/mulberry32.mjs';
import type { FileOp } from './recorder.js';

/** A store's modelled files, by path relative to the store: strata.db, its WAL, data/*. */
export type Files = Map<string, Buffer>;

const SECTOR = 512;

/** The files of `store` that a crash may change (what the recorder follows). */
export function readStoreFiles(store: string): Files {
  const files: Files = new Map();
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(store, rel), { withFileTypes: true })) {
      const r = rel === '.' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (r === 'data') walk(r);
      } else if (e.isFile() && r !== 'lock' && !r.endsWith('-shm')) files.set(r, fs.readFileSync(path.join(store, r)));
    }
  };
  walk('.');
  return files;
}

/** Writes `files` as a fresh store directory at `dir`. */
export function writeStoreFiles(dir: string, files: Files): void {
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true, mode: 0o700 });
  for (const [rel, bytes] of files) fs.writeFileSync(path.join(dir, rel), bytes);
}

type DataOp = Extract<FileOp, { kind: 'write' | 'truncate' | 'punch' | 'allocate' }>;

interface Inode {
  durable: Buffer;
  pending: DataOp[];
}

function apply(content: Buffer, op: DataOp, sectors?: (i: number) => boolean): Buffer {
  switch (op.kind) {
    case 'write': {
      const end = op.offset + op.data.length;
      const out = end > content.length ? Buffer.concat([content, Buffer.alloc(end - content.length)]) : Buffer.from(content);
      if (!sectors) op.data.copy(out, op.offset);
      else {
        // Torn: each sector-aligned piece of the write landed or did not.
        for (let s = Math.floor(op.offset / SECTOR), i = 0; s * SECTOR < end; s++, i++) {
          if (!sectors(i)) continue;
          const from = Math.max(op.offset, s * SECTOR);
          const to = Math.min(end, (s + 1) * SECTOR);
          op.data.copy(out, from, from - op.offset, to - op.offset);
        }
      }
      return out;
    }
    case 'truncate':
      return op.size <= content.length ? Buffer.from(content.subarray(0, op.size)) : Buffer.concat([content, Buffer.alloc(op.size - content.length)]);
    case 'allocate':
      return op.end <= content.length ? content : Buffer.concat([content, Buffer.alloc(op.end - content.length)]);
    case 'punch': {
      const out = Buffer.from(content);
      out.fill(0, Math.min(op.offset, out.length), Math.min(op.offset + op.length, out.length));
      return out;
    }
  }
}

const dirOf = (p: string) => path.posix.dirname(p);

/** The file system as the recorded operations left it at one point: durable and volatile. */
class Model {
  private inodes: Inode[] = [];
  /** Names as the processes see them. */
  names = new Map<string, number>();
  /** Names as the disk holds them (directories synced). */
  durableNames = new Map<string, number>();

  constructor(initial: Files) {
    for (const [p, bytes] of initial) {
      const id = this.inodes.push({ durable: bytes, pending: [] }) - 1;
      this.names.set(p, id);
      this.durableNames.set(p, id);
    }
  }

  apply(op: FileOp): void {
    switch (op.kind) {
      case 'open': {
        let id = this.names.get(op.path);
        if (id === undefined && op.creat) {
          id = this.inodes.push({ durable: Buffer.alloc(0), pending: [] }) - 1;
          this.names.set(op.path, id);
        }
        if (id !== undefined && op.trunc) this.inodes[id].pending.push({ kind: 'truncate', t: op.t, path: op.path, size: 0 });
        return;
      }
      case 'write':
      case 'truncate':
      case 'punch':
      case 'allocate': {
        const id = this.names.get(op.path);
        if (id === undefined) throw new Error(`crash model: ${op.kind} on ${op.path}, which no open made`);
        this.inodes[id].pending.push(op);
        return;
      }
      case 'sync': {
        if (op.path === '.' || op.path === 'data') {
          // A directory: its entries as the processes see them are now on disk.
          for (const p of [...this.durableNames.keys()]) if (dirOf(p) === op.path && !this.names.has(p)) this.durableNames.delete(p);
          for (const [p, id] of this.names) if (dirOf(p) === op.path) this.durableNames.set(p, id);
          return;
        }
        const id = this.names.get(op.path);
        if (id === undefined) throw new Error(`crash model: sync of ${op.path}, which no open made`);
        const inode = this.inodes[id];
        for (const d of inode.pending) inode.durable = apply(inode.durable, d);
        inode.pending = [];
        return;
      }
      case 'unlink':
        this.names.delete(op.path);
        return;
      case 'rename': {
        const id = this.names.get(op.from);
        if (id === undefined) throw new Error(`crash model: rename of ${op.from}, which does not exist`);
        this.names.delete(op.from);
        this.names.set(op.to, id);
        return;
      }
    }
  }

  /** Every unsynced data operation of the inodes `names` reach, tagged with its inode. */
  pending(names: Map<string, number>): { id: number; op: DataOp }[] {
    const ids = new Set(names.values());
    const out: { id: number; op: DataOp }[] = [];
    for (const id of ids) for (const op of this.inodes[id].pending) out.push({ id, op });
    return out.sort((a, b) => a.op.t - b.op.t);
  }

  /** The files after a crash: `names`, each inode's durable content plus the pending ops `keep` chooses. */
  build(names: Map<string, number>, keep: (index: number) => boolean | ((sector: number) => boolean)): Files {
    const contents = new Map<number, Buffer>();
    this.pending(names).forEach(({ id, op }, i) => {
      const k = keep(i);
      if (k === false) return;
      const base = contents.get(id) ?? this.inodes[id].durable;
      contents.set(id, apply(base, op, k === true ? undefined : k));
    });
    const files: Files = new Map();
    for (const [p, id] of names) files.set(p, contents.get(id) ?? this.inodes[id].durable);
    return files;
  }
}

export interface CrashState {
  /** Which recorded operations happened before the crash: ops[0, at). */
  at: number;
  /** Microsecond time of the crash (of the first operation that did not happen; Infinity at the end). */
  t: number;
  /** How the unsynced operations were chosen. */
  variant: string;
  files: Files;
}

/**
 * Crash states of a recorded workload: just before each sync (when the most
 * is unsynced; past `maxSyncPoints` of them, a seeded choice), just after
 * each of `marks` (acknowledgement times), and at the end; at each, the
 * variants above. `seed` fixes every choice, so a failure reproduces.
 */
export function crashStates(
  initial: Files,
  ops: readonly FileOp[],
  opts: { seed: number; marks?: readonly number[]; randomPerPoint?: number; maxSyncPoints?: number; keepDuplicates?: boolean },
): CrashState[] {
  const next = mulberry32(opts.seed);
  const points = new Set<number>([ops.length]);
  for (const m of opts.marks ?? []) {
    const i = ops.findIndex((op) => op.t > m);
    points.add(i === -1 ? ops.length : i);
  }
  // Before each sync; past `maxSyncPoints`, a seeded choice of them (every acknowledgement stays).
  const syncs = ops.flatMap((op, i) => (op.kind === 'sync' ? [i] : []));
  while (syncs.length > (opts.maxSyncPoints ?? Infinity)) syncs.splice(Math.floor(next() * syncs.length), 1);
  for (const i of syncs) points.add(i);
  const sorted = [...points].sort((a, b) => a - b);
  const model = new Model(initial);
  const seen = new Set<string>();
  const states: CrashState[] = [];
  let applied = 0;
  for (const at of sorted) {
    while (applied < at) model.apply(ops[applied++]);
    const t = at < ops.length ? ops[at].t : Infinity;
    const add = (variant: string, files: Files) => {
      const h = createHash('sha256');
      for (const [p, b] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${p}\0${b.length}\0`).update(b);
      const key = h.digest('hex');
      if (seen.has(key) && !opts.keepDuplicates) return;
      seen.add(key);
      states.push({ at, t, variant, files });
    };
    const durable = model.durableNames;
    const n = model.pending(durable).length;
    add('synced only', model.build(durable, () => false));
    add('process killed (all kept, names as seen)', model.build(model.names, () => true));
    if (n > 1) add(`in-order prefix ${n >> 1}/${n}`, model.build(durable, (i) => i < n >> 1));
    if (n > 1) {
      const dropped = Math.floor(next() * n);
      add(`all kept but #${dropped} of ${n}`, model.build(durable, (i) => i !== dropped));
    }
    for (let r = 0; r < (opts.randomPerPoint ?? 1) && n > 0; r++) {
      const torn = Math.floor(next() * n);
      const kept = Array.from({ length: n }, () => next() < 0.5);
      const tornSectors = Array.from({ length: 64 }, () => next() < 0.5);
      add(
        `random subset ${r} (${kept.filter(Boolean).length}/${n} kept, #${torn} torn)`,
        model.build(durable, (i) => (i === torn ? (s: number) => tornSectors[s % 64] : kept[i])),
      );
    }
  }
  return states;
}
