/**
 * Cross-process image leases, kept in SQLite because Node has no flock.
 * A lease names its process by pid and start time, so a pid reused after a
 * crash is not mistaken for the holder. Dead holders' leases are dropped by
 * whoever next looks.
 */
import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { StrataError } from '../errors.js';
import type { ImageId } from './types.js';

export type LeaseMode = 'read' | 'write';
export type LeaseId = number;

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
  mode: LeaseMode;
}

/** Live leases on the given images; dead ones are deleted on the way. Call inside a write transaction. */
export function liveLeases(db: Database.Database, imageIds: readonly ImageId[]): LeaseRow[] {
  if (imageIds.length === 0) return [];
  const rows = db
    .prepare(`SELECT id, image_id, pid, start_time, mode FROM leases WHERE image_id IN (${imageIds.map(() => '?').join(',')})`)
    .all(...imageIds) as LeaseRow[];
  const del = db.prepare('DELETE FROM leases WHERE id = ?');
  return rows.filter((r) => {
    if (isAlive(r.pid, r.start_time)) return true;
    del.run(r.id);
    return false;
  });
}

/** Takes a lease; a writer excludes every other writer of the image. Call inside a write transaction. */
export function acquireLease(db: Database.Database, imageId: ImageId, imageName: string, mode: LeaseMode): LeaseId {
  if (mode === 'write') {
    const writer = liveLeases(db, [imageId]).find((l) => l.mode === 'write');
    if (writer) {
      throw new StrataError('E_BUSY', `image ${imageName} is open for writing by process ${writer.pid}`, { image: imageName, pid: writer.pid });
    }
  }
  const r = db
    .prepare('INSERT INTO leases(image_id, pid, start_time, mode, opened_at) VALUES (?, ?, ?, ?, ?)')
    .run(imageId, process.pid, SELF_START, mode, Date.now());
  return Number(r.lastInsertRowid);
}

export function releaseLease(db: Database.Database, id: LeaseId): void {
  db.prepare('DELETE FROM leases WHERE id = ?').run(id);
}

/** Refuses an operation that would change images some process has open. Call inside a write transaction. */
export function assertNotOpen(db: Database.Database, images: readonly { id: ImageId; name: string }[], what: string): void {
  const live = liveLeases(db, images.map((i) => i.id));
  if (live.length > 0) {
    const img = images.find((i) => i.id === live[0].image_id)!;
    throw new StrataError('E_BUSY', `cannot ${what}: image ${img.name} is open by process ${live[0].pid}`, {
      image: img.name,
      pid: live[0].pid,
    });
  }
}
