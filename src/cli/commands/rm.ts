import { Command } from 'commander';
import { removeImages } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';

export const rmCommand = () =>
  new Command('rm')
    .description('remove images; refuses an image with children unless -r')
    .argument('<names...>', 'images')
    .option('-r, --recursive', 'remove the images below too')
    .action(async (names: string[], o: { recursive?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const removed = longWork(ctx, `removing ${names.join(', ')}`, () => 'nothing removed', (onProgress) => removeImages(store, names, { ...o, onProgress }));
          return { removed: removed.map((r) => r.name) };
        },
        (r) => r.removed.map((n) => `removed ${n}\n`).join(''),
      ),
    );
