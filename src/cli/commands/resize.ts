import { Command } from 'commander';
import { resizeImage } from '../../image/reshape.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';

export const resizeCommand = () =>
  new Command('resize')
    .description('grow a writable image, or shrink it with --shrink (data past the new end is dropped)')
    .argument('<name>', 'writable image')
    .argument('<size>', 'new virtual size (4096, 64K, 10G, 1T), or +SIZE / -SIZE to grow or shrink by that much')
    .option('--shrink', 'allow a smaller size')
    .action(async (name: string, size: string, o: { shrink?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          // `+1G` as qemu-img takes it: relative to the size the resize reads, in its transaction.
          const sign = size.startsWith('+') ? 1 : size.startsWith('-') ? -1 : 0;
          const to = sign === 0 ? parseBytes(size) : { by: sign * parseBytes(size.slice(1)) };
          return longWork(ctx, `resizing ${name}`, () => `${name} is unchanged`, (onProgress) => resizeImage(store, name, to, { ...o, onProgress }));
        },
        (r) => `${r.name} is now ${humanBytes(r.virtualSize)} (${r.virtualSize} bytes)\n`,
      ),
    );
