import { Command } from 'commander';
import { planRemoval, removeImagesAndReclaim, type RemovalReport } from '../../image/lifecycle.js';
import type { Store } from '../../store/store.js';
import type { ImageRecord } from '../../store/types.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

interface RmResult {
  dryRun: boolean;
  removed: string[];
  freedBytes: number;
  reclaimedBytes?: number;
  pinnedBytes?: number;
  punchSupported?: boolean;
}

const bytes = (n: number) => `${humanBytes(n)} (${n} bytes)`;

/** Where the freed space went, in one line. */
function spaceLine(r: RmResult): string {
  if (r.freedBytes === 0) return 'freed 0 B: no stored block was used by these images alone\n';
  const reclaimed = r.reclaimedBytes ?? 0;
  const pinned = r.pinnedBytes ?? 0;
  const kept = r.freedBytes - reclaimed - pinned;
  if (reclaimed === r.freedBytes) return `freed ${bytes(r.freedBytes)}, returned to the file system\n`;
  const parts = [`freed ${bytes(r.freedBytes)}`];
  if (reclaimed > 0) parts.push(`${humanBytes(reclaimed)} returned to the file system`);
  if (pinned > 0) parts.push(`${humanBytes(pinned)} still seen by a running reader (strata gc returns it once that reader ends)`);
  if (kept > 0) parts.push(`${humanBytes(kept)} kept in the data files for new writes (this file system cannot punch holes)`);
  return parts.join('; ') + '\n';
}

/**
 * Removed lazy layers may have been the last images holding their remote
 * manifests: the bucket's records of this store's clones follow
 * (remote/dependents.ts). After the removal committed, so a crash leaves a
 * stale record (more careful), never a missing one; a bucket out of reach
 * leaves it too, with a warning.
 */
async function forgetLazyClones(store: Store, removed: readonly ImageRecord[]): Promise<void> {
  if (!removed.some((rec) => rec.source?.remote !== undefined)) return;
  const [{ openRemote }, { syncDependentsAfter }, { lazyRemoteOf }] = await Promise.all([import('../../remote/remote.js'), import('../../remote/dependents.js'), import('../../remote/cache-limit.js')]);
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
    .description('remove images and return the space they alone used; refuses an image with children unless -r')
    .argument('<names...>', 'images')
    .option('-r, --recursive', 'remove the images below too')
    .option('-n, --dry-run', 'list what would be removed and the space it would free; change nothing')
    .action(async (names: string[], o: { recursive?: boolean; dryRun?: boolean }, cmd: Command) =>
      runCommand<RmResult>(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          if (o.dryRun) {
            const plan = planRemoval(store, names, o);
            return { dryRun: true, removed: plan.images.map((i) => i.name), freedBytes: plan.freedBytes };
          }
          const r: RemovalReport = longWork(ctx, `removing ${names.join(', ')}`, () => 'nothing removed', (onProgress) => removeImagesAndReclaim(store, names, { ...o, onProgress }));
          ctx.logger.info({ removed: r.removed.map((i) => i.name), freedBytes: r.freedBytes, reclaimedBytes: r.reclaimedBytes }, 'removed');
          await forgetLazyClones(store, r.removed);
          return { dryRun: false, ...r, removed: r.removed.map((i) => i.name) };
        },
        (r) =>
          r.dryRun
            ? r.removed.map((n) => `would remove ${n}\n`).join('') + `would free ${bytes(r.freedBytes)}\n`
            : r.removed.map((n) => `removed ${n}\n`).join('') + spaceLine(r),
      ),
    );
