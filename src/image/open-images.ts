/**
 * Which images processes have open right now, read without changing the
 * store: the lease rows whose holder is alive (peekLiveLeases), as the web
 * page shows them. Dead holders' rows are left for the next writer to drop,
 * so this works on a store opened read-only.
 */
import { peekLiveLeases } from '../store/leases/index.js';
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

/** Live leases, oldest first. */
export function openImages(store: Store): OpenImage[] {
  return peekLiveLeases(store)
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
