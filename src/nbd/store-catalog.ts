/**
 * Exports of a strata store: images by name, leaves read-write and frozen
 * images read-only. Named exports are opened when the server starts, so a
 * leaf already served elsewhere is refused at once (E_BUSY) instead of at a
 * client's first connection, and each stays open, holding its writer lease,
 * for the server's whole life.
 */
import type { BlockDevice, ChangeTracker, RemoteBlockSource } from '../image/device.js';
import { ChangedBlocks } from '../image/changes.js';
import { openImage, type Image } from '../image/image.js';
import { assertNameFree, listVisibleImages } from '../store/images/index.js';
import { cloneNames, cloneSummary, insertClones, snapshotSummary } from '../image/lifecycle.js';
import type { ControlConnection, ControlRequest } from './control.js';
import { dropViewIfUnused } from '../image/views.js';
import { releaseLease } from '../store/leases/index.js';
import type { Store } from '../store/core/index.js';
import { isFrozen } from '../store/core/index.js';
import { badInput, notFound } from '../errors.js';
import type { ExportCatalog } from './exports.js';

const SERVE_DIRTY_LIMIT = 16 * 1024 * 1024;

export interface StoreCatalog extends ExportCatalog {
  /** Flushes and closes every image the catalog holds open. */
  closeAll(): void;
  /** Does what another process asked of a leaf this server writes (see control.ts). */
  control(req: ControlRequest, conn?: ControlConnection): unknown;
  /** Where this server takes those requests, as recorded in its leases. */
  readonly controlPath?: string;
}

/** The image as the NBD layer sees it, with `close` doing what the catalog says instead, and its dirty bitmaps. */
function closingWith(img: Image, close: () => void, changeTrackers: readonly ChangeTracker[]): BlockDevice {
  return new Proxy(img, {
    get(target, prop, receiver) {
      if (prop === 'close') return close;
      if (prop === 'changeTrackers') return changeTrackers;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/**
 * The frozen images dirty bitmaps compare with, opened read-only for the
 * server's life: their leases keep them from being removed under a client.
 * A leaf is refused: it changes, so "changed since" it means nothing fixed.
 */
function openBitmapBases(store: Store, names: readonly string[]): Map<string, Image> {
  const out = new Map<string, Image>();
  try {
    for (const n of names) {
      if (out.has(n)) continue;
      const img = openImage(store, n);
      out.set(n, img);
      if (!isFrozen(img.record)) {
        throw badInput(`dirty bitmap ${n}: image ${n} is a writable leaf; a bitmap compares with a frozen image (a snapshot)`, { image: n });
      }
    }
  } catch (e) {
    for (const img of out.values()) img.close();
    throw e;
  }
  return out;
}

/**
 * `control`: this server's control socket, recorded in the leases of the
 * leaves it writes, so other processes can ask it for snapshots.
 * `bitmaps`: frozen images every export offers a `qemu:dirty-bitmap:NAME`
 * context against (E_NOT_FOUND if one is missing, E_BAD_INPUT for a leaf).
 */
export function storeCatalog(
  store: Store,
  names?: readonly string[],
  opts: { control?: string; remoteBlocks?: RemoteBlockSource; bitmaps?: readonly string[] } = {},
): StoreCatalog {
  const bases = openBitmapBases(store, opts.bitmaps ?? []);
  const trackersOf = (img: Image): ChangeTracker[] => [...bases].map(([n, base]) => new ChangedBlocks(store, img, base, n));
  const held = new Map<string, Image>();
  /** Every image open now, named or opened on demand. */
  const live = new Map<string, Image>();
  // A server holds many exports for a long time: a smaller write-back window (flushed
  // by itself when full) keeps its memory bounded, at the cost of more frequent syncs.
  const open = (name: string) => {
    const img = openImage(store, name, { writable: 'if-leaf', dirtyLimit: SERVE_DIRTY_LIMIT, control: opts.control });
    img.remoteBlocks = opts.remoteBlocks;
    live.set(name, img);
    return img;
  };
  if (names && names.length > 0) {
    try {
      for (const n of names) if (!held.has(n)) held.set(n, open(n));
    } catch (e) {
      for (const img of held.values()) img.close();
      for (const img of bases.values()) img.close();
      throw e;
    }
  }
  return {
    controlPath: opts.control,
    list() {
      const visible = listVisibleImages(store);
      return visible
        .filter((i) => !names?.length || names.includes(i.name))
        .map((i) => ({ name: i.name, description: `${i.kind}${isFrozen(i) ? ' (read-only)' : ''}, ${i.virtualSize} bytes`, bitmaps: [...bases.keys()] }));
    },
    open(name) {
      const h = held.get(name);
      if (h) return closingWith(h, () => h.flush(), trackersOf(h)); // the catalog owns a named export's lifetime
      if (names?.length) throw notFound(`image ${name} is not exported by this server`, { image: name });
      const img = open(name);
      return closingWith(
        img,
        () => {
          if (live.get(name) === img) live.delete(name);
          img.close();
        },
        trackersOf(img),
      );
    },
    closeAll() {
      for (const img of held.values()) img.close();
      for (const img of bases.values()) img.close();
      held.clear();
      live.clear();
      bases.clear();
    },
    control(req, conn) {
      const img = live.get(req.image);
      if (!img || img.readOnly) throw notFound(`this server does not write image ${req.image}`, { image: req.image });
      if (req.op === 'snapshot') return snapshotSummary(img.snapshot(req.snapshot));
      if (req.op === 'view') {
        if (!conn) throw badInput('a view is lent for the life of a control connection');
        const { view, lease } = img.pointInTimeView();
        // The asker opens the view (its own lease) before it hangs up; if it died first, nobody
        // holds the view any more and it goes now rather than at the next recovery.
        conn.onClose(() => {
          releaseLease(store, lease);
          dropViewIfUnused(store, view);
        });
        return { view: view.name, pid: process.pid };
      }
      if (req.op === 'clone') {
        const valid = cloneNames(req.names);
        const r = img.snapshot(undefined, (snap, tx) => {
          for (const n of valid) assertNameFree(tx, n);
          return insertClones(tx, snap, valid);
        });
        return cloneSummary({ parent: r.snapshot, snapshot: r.snapshot, clones: r.also! });
      }
      throw badInput(`unknown control request ${JSON.stringify((req as { op?: unknown }).op)}`);
    },
  };
}
