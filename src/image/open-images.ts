/**
 * Which images processes have open right now, read without changing the
 * store: the lease rows (src/store/leases/leases.ts) whose holder is alive.
 *
 * liveLeases() answers the same question but deletes the rows of dead
 * holders on the way, so it needs a write transaction; a reader that must
 * never write (the web page, on a store opened read-only) keeps the rows and
 * skips the dead ones. Liveness is decided as in leases.ts: the kernel's OFD
 * lock on byte `id` of STORE/lock where the row says it holds one, else the
 * holder's pid and start time.
 */
import { isAlive } from '../store/leases/index.js';
import type { Store } from '../store/core/index.js';

export interface OpenImage {
  /** The image held; null for a lease on the store as a whole (a check pinning its view). */
  name: string | null;
  mode: 'read' | 'write';
  pid: number;
  host: string;
  /** A `strata serve` holds it: the lease names the server's control socket. */
  server: boolean;
  /** ISO-8601, UTC. */
  openedAt: string;
}

interface Row {
  id: number;
  image_id: number;
  name: string | null;
  pid: number;
  start_time: string;
  host: string;
  mode: 'read' | 'write';
  opened_at: number;
  locked: number;
  control: string | null;
}

/** Live leases, oldest first. Dead holders' rows are left for the next writer to drop. */
export function openImages(store: Store): OpenImage[] {
  const rows = store.db
    .prepare(
      `SELECT l.id, l.image_id, i.name, l.pid, l.start_time, l.host, l.mode, l.opened_at, l.locked, l.control
         FROM leases l LEFT JOIN images i ON i.id = l.image_id ORDER BY l.opened_at, l.id`,
    )
    .all() as Row[];
  return rows
    .filter((r) => (r.locked === 1 && store.locks.supported ? store.locks.held(r.id) : isAlive(r.pid, r.start_time)))
    .filter((r) => r.image_id === 0 || (r.name !== null && !r.name.startsWith('.')))
    .map((r) => ({
      name: r.image_id === 0 ? null : r.name,
      mode: r.mode,
      pid: r.pid,
      host: r.host,
      server: r.control !== null,
      openedAt: new Date(r.opened_at).toISOString(),
    }));
}
