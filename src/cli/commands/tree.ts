import { Command } from 'commander';
import { listVisibleImages } from '../../store/catalog.js';
import { imageForest, type TreeNode } from '../../image/listing.js';
import { runCommand } from '../context.js';
import { subtreeOf } from '../name-filter.js';
import { humanBytes } from '../parse.js';

export function renderForest(forest: readonly TreeNode[]): string {
  const lines: string[] = [];
  const walk = (n: TreeNode, prefix: string, last: boolean, root: boolean) => {
    const label = `${n.name}  ${n.kind}${n.writable ? ' (writable)' : ''}  ${humanBytes(n.virtualSize)}  own ${humanBytes(n.ownBytes)}${n.origin ? `  [${n.origin}]` : ''}${n.lazy ? `  [lazy: ${humanBytes(n.lazy.remoteOnlyBytes)} only in ${Object.keys(n.lazy.remotes).join(', ')}]` : ''}`;
    lines.push(root ? label : `${prefix}${last ? '└── ' : '├── '}${label}`);
    const next = root ? '' : prefix + (last ? '    ' : '│   ');
    n.children.forEach((c, i) => walk(c, next, i === n.children.length - 1, false));
  };
  forest.forEach((n) => walk(n, '', true, true));
  return lines.length ? lines.join('\n') + '\n' : 'no images\n';
}

export const treeCommand = () =>
  new Command('tree')
    .description('show the forest of images: bases, layers and writable leaves; with NAME, only that image and those built on it')
    .argument('[name]', 'image whose subtree to show')
    .action(async (name: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const { db } = await ctx.store();
          const forest = imageForest(listVisibleImages(db), db);
          return name === undefined ? forest : [subtreeOf(forest, name)];
        },
        (f) => renderForest(f),
      ),
    );
