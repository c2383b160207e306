import { Command } from 'commander';
import { planRemoval, removeImagesAndReclaim, type KeptSnapshot, type RemovalReport } from '../../image/lifecycle.js';
import { leftBehind } from '../../image/prune.js';
import type { Store, ImageRecord } from '../../store/core/index.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';
import { bytes, prunedCounts, spaceLine } from '../removal-text.js';

interface RmResult {
  dryRun: boolean;
  removed: string[];
  freedBytes: number;
  reclaimedBytes?: number;
  pinnedBytes?: number;
  punchSupported?: boolean;
  /** The removed images' snapshots that stay, and what stands on each (absent when none). */
  kept?: KeptSnapshot[];
  /** Images the removal left that no name leads to any more: `strata prune` removes them (absent when none). */
  unused?: { images: { name: string; kind: string }[]; bytes: number };
}

const keptLines = (kept: readonly KeptSnapshot[] | undefined, verb: string) =>
  (kept ?? [])
    .map((k) => {
      const why = [...(k.dependents.length ? [`${k.dependents.join(', ')} ${k.dependents.length > 1 ? 'stand' : 'stands'} on it`] : []), ...(k.openBy === undefined ? [] : [`open by process ${k.openBy}`])];
      return `${verb} ${k.name}: ${why.join('; ')}\n`;
    })
    .join('');

/** Fields present only when they hold something, so a plain rm's document stays as it was. */
const some = <K extends string, T>(key: K, v: T[] | undefined): Partial<Record<K, T[]>> => (v && v.length > 0 ? ({ [key]: v } as Record<K, T[]>) : {});

/**
 * Removed lazy layers may have been the last images holding their remote
 * manifests: the bucket's records of this store's clones follow
 * (remote/upkeep/dependents.ts). After the removal committed, so a crash leaves a
 * stale record (more careful), never a missing one; a bucket out of reach
 * leaves it too, with a warning.
 */
async function forgetLazyClones(store: Store, removed: readonly ImageRecord[]): Promise<void> {
  if (!removed.some((rec) => rec.source?.remote !== undefined)) return;
  const [{ openRemote }, { syncDependentsAfter }, { lazyRemoteOf }] = await Promise.all([import('../../remote/remote.js'), import('../../remote/upkeep/dependents.js'), import('../../remote/store-side/cache-limit.js')]);
  const remotes = new Set(removed.map(lazyRemoteOf).filter((x) => x !== undefined));
  const warn = (msg: string) => process.stderr.write(`strata: warning: ${msg}\n`);
  for (const name of remotes) {
    let r;
    try {
      r = openRemote(store.dir, name);
    } catch {
      continue; // the remote was forgotten (remote rm --force): nothing to update
    }
    try {
      await syncDependentsAfter(store, r, warn);
    } finally {
      r.close();
    }
  }
}

export const rmCommand = () =>
  new Command('rm')
    .description("remove images and return the space they alone used, with each image's own snapshots (IMAGE@SNAP) that no other image stands on; refuses an image with children unless -r")
    .argument('<names...>', 'images')
    .option('-r, --recursive', 'remove the images below too')
    .option('-n, --dry-run', 'list what would be removed and the space it would free; change nothing')
    .action(async (names: string[], o: { recursive?: boolean; dryRun?: boolean }, cmd: Command) =>
      runCommand<RmResult>(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const opts = { ...o, withSnapshots: true };
          if (o.dryRun) {
            const plan = planRemoval(store, names, opts);
            return { dryRun: true, removed: plan.images.map((i) => i.name), freedBytes: plan.freedBytes, ...some('kept', plan.kept) };
          }
          const r: RemovalReport = longWork(ctx, `removing ${names.join(', ')}`, () => 'nothing removed', (onProgress) => removeImagesAndReclaim(store, names, { ...opts, onProgress }));
          ctx.logger.info({ removed: r.removed.map((i) => i.name), freedBytes: r.freedBytes, reclaimedBytes: r.reclaimedBytes }, 'removed');
          await forgetLazyClones(store, r.removed);
          const left = leftBehind(store, r.removed);
          const { removed, snapshots: _snapshots, kept, ...space } = r;
          return {
            dryRun: false,
            ...space,
            removed: removed.map((i) => i.name),
            ...some('kept', kept),
            ...(left.images.length > 0 ? { unused: { images: left.images.map((p) => ({ name: p.image.name, kind: p.kind })), bytes: left.bytes } } : {}),
          };
        },
        (r) =>
          r.dryRun
            ? r.removed.map((n) => `would remove ${n}\n`).join('') + keptLines(r.kept, 'would keep') + `would free ${bytes(r.freedBytes)}\n`
            : r.removed.map((n) => `removed ${n}\n`).join('') +
              keptLines(r.kept, 'kept') +
              spaceLine(r) +
              (r.unused ? `${prunedCounts(r.unused.images)}, ${humanBytes(r.unused.bytes)}, no longer used: strata prune\n` : ''),
      ),
    );
