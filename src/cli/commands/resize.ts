import { Command } from 'commander';
import { resizeImage } from '../../image/reshape.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';

export const resizeCommand = () =>
  new Command('resize')
    .description('grow a writable image, or shrink it with --shrink (data past the new end is dropped)')
    .argument('<name>', 'writable image')
    .argument('<size>', 'new virtual size: 4096, 64K, 10G, 1T')
    .option('--shrink', 'allow a smaller size')
    .action(async (name: string, size: string, o: { shrink?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const bytes = parseBytes(size);
          return longWork(ctx, `resizing ${name}`, () => `${name} is unchanged`, (onProgress) => resizeImage(store, name, bytes, { ...o, onProgress }));
        },
        (r) => `${r.image} is now ${humanBytes(r.virtualSize)} (${r.virtualSize} bytes)\n`,
      ),
    );
