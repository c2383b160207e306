import { Command } from 'commander';
import { planPrune, pruneImages } from '../../image/prune.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { bytes, prunedCounts, spaceLine } from '../removal-text.js';

interface PruneResult {
  dryRun: boolean;
  pruned: { name: string; kind: string; why: string }[];
  freedBytes: number;
  reclaimedBytes?: number;
  pinnedBytes?: number;
  punchSupported?: boolean;
}

const line = (verb: string) => (p: PruneResult['pruned'][number]) => `${verb} ${p.name} (${p.kind}: ${p.why})\n`;

export const pruneCommand = () =>
  new Command('prune')
    .description(
      'remove what no name leads to: container layers no image uses, snapshots of removed images, hidden images left by interrupted imports ' +
        '(never a leaf, a named image, an open image or anything below them)',
    )
    .option('-n, --dry-run', 'list what would be removed and the space it would free; change nothing')
    .action(async (o: { dryRun?: boolean }, cmd: Command) =>
      runCommand<PruneResult>(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const shown = (list: { image: { name: string }; kind: string; why: string }[]) => list.map((p) => ({ name: p.image.name, kind: p.kind, why: p.why }));
          if (o.dryRun) {
            const plan = planPrune(store);
            return { dryRun: true, pruned: shown(plan.pruned), freedBytes: plan.freedBytes };
          }
          const r = longWork(ctx, 'pruning', () => 'nothing removed', (onProgress) => pruneImages(store, { onProgress }));
          const { pruned, ...space } = r;
          return { dryRun: false, pruned: shown(pruned), ...space };
        },
        (r) => {
          if (r.pruned.length === 0) return 'nothing to prune: a name leads to every image\n';
          return r.dryRun
            ? r.pruned.map(line('would remove')).join('') + `would remove ${prunedCounts(r.pruned)} and free ${bytes(r.freedBytes)}\n`
            : r.pruned.map(line('removed')).join('') + `removed ${prunedCounts(r.pruned)}; ` + spaceLine(r, 'freed 0 B: other images use all their blocks');
        },
      ),
    );
