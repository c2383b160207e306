import { Command } from 'commander';
import { renameImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';

export const renameCommand = () =>
  new Command('rename')
    .description('rename an image')
    .argument('<old>', 'current name')
    .argument('<new>', 'new name')
    .action(async (from: string, to: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => ({ from, to: renameImage(await ctx.store(), from, to).name }),
        (r) => `renamed ${r.from} to ${r.to}\n`,
      ),
    );
