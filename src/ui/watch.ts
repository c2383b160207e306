/**
 * What the page shows, computed from the store by the same library calls as
 * the CLI's --json (stats, ls, du, info, diff, du --sharing), and recomputed
 * only when the store has changed.
 *
 * A change is either a commit by another process (SQLite's data_version,
 * which moves whenever another connection commits: this one never writes)
 * or a holder opening or closing an image (a lease's lock, which a killed
 * holder drops without any commit). Checking both costs one PRAGMA and one
 * small query, so the page can poll every second.
 *
 * History: the store keeps no record of how an image's own bytes grew, so
 * the watcher records each image's own bytes whenever it sees a change, for
 * as long as it runs, in memory only (the page never writes to the store).
 */
import { resolveImage } from '../image/refs.js';
import { chainOf, listVisibleImages } from '../store/images/index.js';
import { dataVersion, readTx, type Store } from '../store/core/index.js';
import { diffImages, diskUsageOf, type ImageUsage } from '../image/inspect.js';
import { describeImage, listImageRows, type ImageInfo, type ListedImage } from '../image/listing.js';
import { openImages, type OpenImage } from '../image/open-images.js';
import { sharingOf, type SharedWith } from '../image/sharing.js';
import { storeStats, type StoreStats } from '../image/usage.js';

export interface StoreState {
  /** Grows by one each time the store is seen to change. */
  version: number;
  store: string;
  /** ISO-8601, UTC: when these figures were read. */
  readAt: string;
  /** How long reading them took. */
  elapsedMs: number;
  /** `strata stats --json`. */
  stats: StoreStats;
  /** `strata ls --json`. */
  images: ListedImage[];
  /** Names of the images that are snapshots of a leaf (`strata snapshot`): drift counts a leaf's own snapshots, not the image it was cloned from. */
  snapshots: string[];
  /** `strata du --json`. */
  usage: ImageUsage[];
  /** Live leases: who has which image open. */
  open: OpenImage[];
}

export interface OwnSample {
  /** ISO-8601, UTC. */
  at: string;
  ownBytes: number;
}

export interface ImageDetail {
  version: number;
  /** `strata info NAME --json`. */
  info: ImageInfo;
  /** `strata du NAME --json` (its one row). */
  usage: ImageUsage;
  /** Drift from the base of its chain and from its parent: `strata diff NAME BASE --json`'s differingBytes. */
  drift: { base: string | null; baseDifferingBytes: number | null; parent: string | null; parentDifferingBytes: number | null };
  /** `strata du NAME --sharing --json`, the first few. */
  sharedWith: SharedWith[];
  /** Own bytes as this watcher saw them change (since it started). */
  history: OwnSample[];
  open: OpenImage[];
}

/** Samples kept per image: enough for a sparkline, bounded for 10,000 images. */
const HISTORY = 240;
const SHARED_SHOWN = 10;

export class StoreWatch {
  private data = -1;
  private leases = '';
  private state: StoreState | undefined;
  private json = '';
  private readonly history = new Map<string, OwnSample[]>();
  private readonly details = new Map<string, ImageDetail>();

  constructor(private readonly store: Store) {}

  /** Moves whenever another connection commits: this one never writes. */
  private dataVersion(): number {
    return dataVersion(this.store);
  }

  /** The state, recomputed if the store changed since the last call. */
  current(): StoreState {
    const open = openImages(this.store);
    const leases = open.map((o) => `${o.pid}:${o.name}:${o.mode}:${o.openedAt}`).join(',');
    const data = this.dataVersion();
    if (this.state && data === this.data && leases === this.leases) return this.state;
    const t0 = performance.now();
    // Only who holds what changed (a server opened an image): the figures stand, no need to read them again.
    const read =
      this.state && data === this.data
        ? { stats: this.state.stats, images: this.state.images, usage: this.state.usage, snapshots: this.state.snapshots }
        : // One read snapshot, so ls, du and stats agree with each other.
          readTx(this.store, () => {
            // Each image's referenced blocks are counted once for both (they would be the same twice).
            const referenced = new Map<number, number>();
            const snapshots = listVisibleImages(this.store).filter((i) => i.snapshotAt !== null).map((i) => i.name);
            return { stats: storeStats(this.store, { referenced }), images: listImageRows(this.store), usage: diskUsageOf(this.store, [], { referenced }), snapshots };
          });
    const readAt = new Date().toISOString();
    this.record(read.images, readAt);
    this.state = {
      version: (this.state?.version ?? 0) + 1,
      store: this.store.dir,
      readAt,
      elapsedMs: Math.round(performance.now() - t0),
      ...read,
      open,
    };
    this.json = JSON.stringify(this.state);
    this.data = data;
    this.leases = leases;
    this.details.clear();
    return this.state;
  }

  /** current(), serialized once per version. */
  currentJson(): { version: number; json: string } {
    const s = this.current();
    return { version: s.version, json: this.json };
  }

  private record(images: readonly ListedImage[], at: string): void {
    const seen = new Set<string>();
    for (const i of images) {
      seen.add(i.name);
      const h = this.history.get(i.name) ?? [];
      if (h.length === 0 || h[h.length - 1].ownBytes !== i.ownBytes) {
        h.push({ at, ownBytes: i.ownBytes });
        if (h.length > HISTORY) h.splice(0, h.length - HISTORY);
        this.history.set(i.name, h);
      }
    }
    for (const name of this.history.keys()) if (!seen.has(name)) this.history.delete(name);
  }

  /** One image in depth; E_NOT_FOUND when there is no such image. */
  detail(name: string): ImageDetail {
    const state = this.current();
    const cached = this.details.get(name);
    if (cached) return cached;
    const d = readTx(this.store, (): ImageDetail => {
      const info = describeImage(this.store, name);
      const chain = chainOf(this.store, resolveImage(this.store, name));
      const base = chain.length > 1 ? chain[chain.length - 1].name : null;
      return {
        version: state.version,
        info,
        usage: diskUsageOf(this.store, [name])[0],
        drift: {
          base,
          baseDifferingBytes: base === null ? null : diffImages(this.store, name, base).differingBytes,
          parent: info.parent,
          parentDifferingBytes: info.parent === null ? null : diffImages(this.store, name, info.parent).differingBytes,
        },
        sharedWith: sharingOf(this.store, name, SHARED_SHOWN).sharedWith,
        history: this.history.get(name) ?? [],
        open: state.open.filter((o) => o.name === name),
      };
    });
    this.details.set(name, d);
    return d;
  }
}
