import { Command } from 'commander';
import { listVisibleImages } from '../../store/catalog.js';
import { BLOCK_SIZE, type ImageRecord } from '../../store/types.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { originText } from './info.js';

export interface TreeNode {
  name: string;
  kind: string;
  writable: boolean;
  virtualSize: number;
  ownBytes: number;
  /** Where a container image or layer came from, shortly (absent for disks). */
  origin?: string;
  children: TreeNode[];
}

/** The forest of the given images (callers pass the visible ones). */
export function imageForest(images: readonly ImageRecord[]): TreeNode[] {
  const kids = new Map<number | null, ImageRecord[]>();
  for (const i of images) kids.set(i.parentId, [...(kids.get(i.parentId) ?? []), i]);
  const build = (i: ImageRecord): TreeNode => ({
    name: i.name,
    kind: i.kind,
    writable: i.kind === 'leaf',
    virtualSize: i.virtualSize,
    ownBytes: i.ownBlocks * BLOCK_SIZE,
    ...(originText(i.source) ? { origin: originText(i.source) } : {}),
    children: (kids.get(i.id) ?? []).map(build),
  });
  return (kids.get(null) ?? []).map(build);
}

export function renderForest(forest: readonly TreeNode[]): string {
  const lines: string[] = [];
  const walk = (n: TreeNode, prefix: string, last: boolean, root: boolean) => {
    const label = `${n.name}  ${n.kind}${n.writable ? ' (writable)' : ''}  ${humanBytes(n.virtualSize)}  own ${humanBytes(n.ownBytes)}${n.origin ? `  [${n.origin}]` : ''}`;
    lines.push(root ? label : `${prefix}${last ? '└── ' : '├── '}${label}`);
    const next = root ? '' : prefix + (last ? '    ' : '│   ');
    n.children.forEach((c, i) => walk(c, next, i === n.children.length - 1, false));
  };
  forest.forEach((n) => walk(n, '', true, true));
  return lines.length ? lines.join('\n') + '\n' : 'no images\n';
}

export const treeCommand = () =>
  new Command('tree').description('show the forest of images: bases, layers and writable leaves').action(async (_o, cmd: Command) =>
    runCommand(cmd, async (ctx) => imageForest(listVisibleImages((await ctx.store()).db)), (f) => renderForest(f)),
  );
