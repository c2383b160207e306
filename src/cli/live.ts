/**
 * Operations on a leaf that a server may be writing. Run here when nobody
 * writes it; when a server does, its lease names a control socket and the
 * server does the work itself, between two of its writes (nbd/control.ts).
 */
import { StrataError } from '../errors.js';
import type { ControlRequest } from '../nbd/control.js';

export async function orAskServer<T>(local: () => T, req: ControlRequest): Promise<T> {
  try {
    return local();
  } catch (e) {
    const control = e instanceof StrataError && e.code === 'E_BUSY' ? e.data.control : undefined;
    if (typeof control !== 'string') throw e;
    // Loaded only here: node:net costs every other command start-up time.
    const { askHolder } = await import('../nbd/control.js');
    try {
      return (await askHolder(control, req)) as T;
    } catch (e2) {
      // The server closed the image between our look and its answer (an export opened on demand
      // whose last client left): nobody writes it now, so it can be done here after all.
      if (e2 instanceof StrataError && e2.code === 'E_NOT_FOUND' && /^this server does not write image /.test(e2.message)) return local();
      throw e2;
    }
  }
}
