import { Command } from 'commander';
import { listVisibleImages } from '../../store/images/index.js';
import { splitSnapshotName } from '../../store/core/index.js';
import { imageForest, type TreeNode } from '../../image/listing.js';
import { runCommand } from '../context.js';
import { subtreeOf } from '../name-filter.js';
import { humanBytes } from '../parse.js';

/** A line of the drawn tree and the lines below it. */
interface Drawn {
  label: string;
  children: Drawn[];
}

/** Chains of more snapshots than this are folded: the oldest and the newest two show, the rest is one line. */
const FOLD_OVER = 5;

const label = (n: TreeNode) =>
  `${n.name}  ${n.kind}${n.writable ? ' (writable)' : ''}  ${humanBytes(n.virtualSize)}  own ${humanBytes(n.ownBytes)}${n.origin ? `  [${n.origin}]` : ''}` +
  (n.lazy ? `  [lazy: ${humanBytes(n.lazy.remoteOnlyBytes)} only in ${Object.keys(n.lazy.remotes).join(', ')}]` : '');

/**
 * Thirty daily snapshots nest thirty deep, each level four columns: a run of
 * snapshots where each stands only on the one before is drawn as its oldest,
 * "… N more snapshots", and its newest two (strata snapshots lists them all).
 */
function draw(n: TreeNode, fold: boolean): Drawn {
  const run = [n];
  while (fold && splitSnapshotName(run[run.length - 1].name) && run[run.length - 1].children.length === 1 && splitSnapshotName(run[run.length - 1].children[0].name)) {
    run.push(run[run.length - 1].children[0]);
  }
  if (run.length <= FOLD_OVER) return { label: label(n), children: n.children.map((c) => draw(c, fold)) };
  const owner = splitSnapshotName(n.name)!.image;
  const hidden = run.length - 3;
  const [newer, newest] = run.slice(-2);
  return {
    label: label(n),
    children: [
      {
        label: `… ${hidden} more snapshots of ${owner} (strata snapshots ${owner}, or strata tree --all)`,
        children: [{ label: label(newer), children: [{ label: label(newest), children: newest.children.map((c) => draw(c, fold)) }] }],
      },
    ],
  };
}

export function renderForest(forest: readonly TreeNode[], opts: { all?: boolean } = {}): string {
  const lines: string[] = [];
  const walk = (n: Drawn, prefix: string, last: boolean, root: boolean) => {
    lines.push(root ? n.label : `${prefix}${last ? '└── ' : '├── '}${n.label}`);
    const next = root ? '' : prefix + (last ? '    ' : '│   ');
    n.children.forEach((c, i) => walk(c, next, i === n.children.length - 1, false));
  };
  forest.forEach((n) => walk(draw(n, !opts.all), '', true, true));
  return lines.length ? lines.join('\n') + '\n' : 'no images\n';
}

export const treeCommand = () =>
  new Command('tree')
    .description('show the forest of images: bases, layers and writable leaves (long runs of snapshots folded); with NAME, only that image and those built on it')
    .argument('[name]', 'image whose subtree to show')
    .option('-a, --all', 'draw every snapshot of long snapshot chains')
    .action(async (name: string | undefined, o: { all?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const forest = imageForest(listVisibleImages(store), store);
          return name === undefined ? forest : [subtreeOf(forest, name)];
        },
        (f) => renderForest(f, o),
      ),
    );
