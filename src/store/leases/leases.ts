/**
 * Leases: which processes have which images open, and what they may still see.
 *
 * A lease is a row in SQLite (who holds it, for the messages) backed by an
 * OFD lock on byte `id` of STORE/lock (whether it is live: see lockfile.ts).
 * Liveness is the kernel's answer, so a holder in another PID namespace is
 * never mistaken for a dead one. A row whose lock is gone belongs to a dead
 * holder and is deleted by whoever next looks. Without OFD locks (no native
 * addon) a lease falls back to its holder's pid and start time, which only
 * works inside one PID namespace.
 *
 * Rules the callers keep:
 * - Look up an image, check its kind and take its lease in one write
 *   transaction, and act on the record read there (takeLease runs inside it).
 * - A writer excludes other writers; any lease excludes reshapes and rm.
 * - A pinned lease (a reader of a leaf that someone may be writing, or a
 *   check) carries the free epoch of its view: slots freed after it are not
 *   reused while it lives (see freelist.ts), so what it reads is never
 *   another image's data.
 */
import fs from 'node:fs';
import os from 'node:os';
import { StrataError } from '../../errors.js';
import { prepared } from '../core/statements.js';
import { metaNumber } from '../core/meta.js';
import { type Store } from '../core/store.js';
import type { ImageId } from '../core/types.js';
import type { WriteTx } from '../core/tx.js';

export type LeaseMode = 'read' | 'write';
export type LeaseId = number;

/** A live lease of this process: its row id and the open file holding its lock (null without OFD locks). */
export interface Lease {
  readonly id: LeaseId;
  readonly fd: number | null;
}

/** The image id of a lease on the store as a whole. */
export const STORE_LEASE = 0 as ImageId;

function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? '';
  } catch {
    return null;
  }
}

const SELF_START = startTimeOf(process.pid) ?? '';

/** The fallback test: a holder is alive while a process with its pid and start time exists. */
export function isAlive(pid: number, startTime: string): boolean {
  if (pid === process.pid) return startTime === SELF_START;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = startTimeOf(pid);
  // Without /proc we cannot tell a reused pid apart; assume the holder lives.
  return now === null ? true : startTime === '' || now === startTime;
}

interface LeaseRow {
  id: number;
  image_id: number;
  pid: number;
  start_time: string;
  host: string;
  mode: LeaseMode;
  locked: number;
  pin: number | null;
  control: string | null;
}

const COLS = 'id, image_id, pid, start_time, host, mode, locked, pin, control';

function rowIsLive(store: Store, r: LeaseRow): boolean {
  if (r.locked === 1 && store.locks.supported) return store.locks.held(r.id);
  return isAlive(r.pid, r.start_time);
}

/** Keeps the live rows and deletes the dead ones. Call inside a write transaction. */
function keepLive(store: Store, rows: LeaseRow[]): LeaseRow[] {
  const del = prepared(store.db, 'DELETE FROM leases WHERE id = ?');
  return rows.filter((r) => {
    if (rowIsLive(store, r)) return true;
    del.run(r.id);
    return false;
  });
}

/** Live leases on the given images; dead ones are deleted on the way. Call inside a write transaction. */
export function liveLeases(store: Store, imageIds: readonly ImageId[]): LeaseRow[] {
  if (imageIds.length === 0) return [];
  const rows = store.db.prepare(`SELECT ${COLS} FROM leases WHERE image_id IN (${imageIds.map(() => '?').join(',')})`).all(...imageIds) as LeaseRow[];
  return keepLive(store, rows);
}

/**
 * The oldest free epoch a live lease still sees, or null when none pins
 * anything: slots freed in a later epoch must stay untouched. Call inside a
 * write transaction.
 */
export function oldestPin(store: Store): number | null {
  const rows = keepLive(store, prepared(store.db, `SELECT ${COLS} FROM leases WHERE pin IS NOT NULL`).all() as LeaseRow[]);
  return rows.length === 0 ? null : Math.min(...rows.map((r) => r.pin!));
}

/** Images any live lease holds (STORE_LEASE for a store-wide one); dead rows are deleted. Call inside a write transaction. */
export function leasedImageIds(store: Store): ImageId[] {
  const rows = keepLive(store, prepared(store.db, `SELECT ${COLS} FROM leases`).all() as LeaseRow[]);
  return [...new Set(rows.map((r) => r.image_id as ImageId))];
}

export type { LeaseRow };

/** The live writer of an image, if any. Call inside a write transaction. */
export function writerOf(store: Store, imageId: ImageId): LeaseRow | undefined {
  return liveLeases(store, [imageId]).find((l) => l.mode === 'write');
}

// Named as the page names it: a lease with a control socket is a `strata serve`'s.
const holder = (r: LeaseRow) => `${r.control ? 'strata serve' : 'process'} ${r.pid}${r.host && r.host !== os.hostname() ? ` on host ${r.host}` : ''}`;

/**
 * Takes a lease; a writer excludes every other writer of the image. With
 * `pin`, the lease keeps every slot the holder may read from reuse. Call
 * inside a write transaction (see leaseTx), whose rollback must release it.
 */
export function takeLease(store: Store, imageId: ImageId, imageName: string, mode: LeaseMode, opts: { pin?: boolean; control?: string } = {}): Lease {
  if (mode === 'write') {
    const writer = writerOf(store, imageId);
    if (writer) {
      throw new StrataError('E_BUSY', `image ${imageName} is open for writing by ${holder(writer)}`, { image: imageName, pid: writer.pid });
    }
  }
  const locked = store.locks.supported ? 1 : 0;
  const pin = opts.pin ? metaNumber(store.db, 'free_epoch') : null;
  const r = prepared(
    store.db,
    'INSERT INTO leases(image_id, pid, start_time, host, mode, opened_at, locked, pin, control) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ).run(imageId, process.pid, SELF_START, os.hostname(), mode, Date.now(), locked, pin, opts.control ?? null);
  const id = Number(r.lastInsertRowid);
  if (!locked) return { id, fd: null };
  // Ids are never reused (AUTOINCREMENT), so nobody else can hold this byte.
  const fd = store.locks.hold(id);
  if (fd === null) throw new StrataError('E_BUSY', `lease ${id} of ${imageName} is locked by another process; the lock file ${store.dir}/lock is shared wrongly`);
  return { id, fd };
}

/**
 * Runs `fn` in a write transaction in which it may take leases; if the
 * transaction fails, the locks of the leases it took are dropped with it.
 */
export function leaseTx<T>(store: Store, fn: (take: typeof takeLease, tx: WriteTx) => T, opts: { durable?: boolean } = {}): T {
  const taken: Lease[] = [];
  const take: typeof takeLease = (...args) => {
    const l = takeLease(...args);
    taken.push(l);
    return l;
  };
  try {
    return opts.durable ? store.write((tx) => fn(take, tx)) : store.writeVolatile((tx) => fn(take, tx));
  } catch (e) {
    for (const l of taken) if (l.fd !== null) store.locks.release(l.fd);
    throw e;
  }
}

/**
 * Ends a lease: the lock goes first, so there is never a moment where the
 * lock is held and the row is gone; a row left behind by a crash right after
 * is dead and deleted by the next look.
 */
export function releaseLease(store: Store, lease: Lease): void {
  if (lease.fd !== null) store.locks.release(lease.fd);
  store.writeVolatile(() => prepared(store.db, 'DELETE FROM leases WHERE id = ?').run(lease.id));
}

/** Moves a lease of this process to another image: a live snapshot hands the writer lease to the new leaf row. */
export function moveLease(store: Store, lease: Lease, imageId: ImageId): void {
  prepared(store.db, 'UPDATE leases SET image_id = ? WHERE id = ?').run(imageId, lease.id);
}

/**
 * Refuses an operation that would change images some process has open
 * (`writersOnly`: that some process is writing), other than through the
 * lease `except`. Call inside a write transaction. The error's data names the
 * holder's control socket, where a server takes the request itself.
 */
export function assertNotOpen(
  store: Store,
  images: readonly { id: ImageId; name: string }[],
  what: string,
  opts: { writersOnly?: boolean; except?: Lease } = {},
): void {
  const live = liveLeases(store, images.map((i) => i.id)).filter((l) => l.id !== opts.except?.id && (!opts.writersOnly || l.mode === 'write'));
  if (live.length > 0) {
    const img = images.find((i) => i.id === live[0].image_id)!;
    throw new StrataError('E_BUSY', `cannot ${what}: image ${img.name} is open by ${holder(live[0])}`, {
      image: img.name,
      pid: live[0].pid,
      ...(live[0].control ? { control: live[0].control } : {}),
    });
  }
}
