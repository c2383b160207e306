/** How a lazy clone's layers are marked in their `source` (lazy.ts makes them; cache-limit.ts and dependents.ts find them). */
import type { ImageRecord } from '../store/core/index.js';

/** `source.format` of a lazy clone's layers. */
export const LAZY_FORMAT = 'remote-lazy';

/** The remote a lazy layer's blocks come from; undefined for any other image. */
export function lazyRemoteOf(rec: ImageRecord): string | undefined {
  const s = rec.source;
  return s?.format === LAZY_FORMAT && typeof s.remote === 'string' ? s.remote : undefined;
}
