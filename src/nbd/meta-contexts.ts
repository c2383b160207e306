/**
 * The metadata contexts an export offers, how LIST/SET_META_CONTEXT queries
 * select them, and what answers BLOCK_STATUS for each selected one.
 *
 * - `base:allocation` (the protocol's own): data vs hole/zero (extents.ts).
 * - `qemu:dirty-bitmap:NAME` (qemu's namespace, docs/interop/nbd.rst): flag
 *   1 marks a block whose content may differ from the frozen image NAME, 0
 *   one that is the same; what `qemu-nbd -B NAME` serves for a qcow2
 *   persistent bitmap, decided here from the maps (image/changes.ts).
 *
 * Queries follow the protocol and qemu: LIST with no query lists every
 * context, and a namespace (`base:`, `qemu:`) or `qemu:dirty-bitmap:` with
 * an empty leaf lists the contexts under it; SET selects exact names only.
 * Names nobody offers are ignored (no error), as the protocol asks.
 */
import type { BlockDevice, ChangeTracker } from '../image/device.js';

export const BASE_ALLOCATION = 'base:allocation';
export const DIRTY_BITMAP_PREFIX = 'qemu:dirty-bitmap:';
export const BASE_ALLOCATION_ID = 1;

export interface MetaContext {
  /** Ours to choose; the client names the context by it in every BLOCK_STATUS reply. */
  id: number;
  name: string;
}

/** What answers BLOCK_STATUS for one selected context. */
export type BoundContext = { id: number; kind: 'allocation' } | { id: number; kind: 'bitmap'; tracker: ChangeTracker };

export const bitmapContextName = (since: string): string => DIRTY_BITMAP_PREFIX + since;

/** The contexts of an export with dirty bitmaps against `bitmaps` (frozen image names), ids fixed by position. */
export function offeredContexts(bitmaps: readonly string[] = []): MetaContext[] {
  return [{ id: BASE_ALLOCATION_ID, name: BASE_ALLOCATION }, ...bitmaps.map((b, i) => ({ id: BASE_ALLOCATION_ID + 1 + i, name: bitmapContextName(b) }))];
}

function matches(name: string, query: string, list: boolean): boolean {
  if (query === name) return true;
  if (!list) return false;
  // An empty leaf is a wildcard for LIST: `base:`, `qemu:` and `qemu:dirty-bitmap:`.
  return query.endsWith(':') && name.startsWith(query);
}

/** The offered contexts the queries select, in offered order (each once). LIST with no query selects all. */
export function selectContexts(offered: readonly MetaContext[], queries: readonly string[], list: boolean): MetaContext[] {
  if (list && queries.length === 0) return [...offered];
  return offered.filter((c) => queries.some((q) => matches(c.name, q, list)));
}

/** Binds the selection to the opened device; a bitmap the device does not track is dropped. */
export function bindContexts(selected: readonly MetaContext[], device: BlockDevice): BoundContext[] {
  const out: BoundContext[] = [];
  for (const c of selected) {
    if (c.name === BASE_ALLOCATION) out.push({ id: c.id, kind: 'allocation' });
    else {
      const tracker = device.changeTrackers?.find((t) => bitmapContextName(t.sinceName) === c.name);
      if (tracker) out.push({ id: c.id, kind: 'bitmap', tracker });
    }
  }
  return out;
}
