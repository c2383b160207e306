import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { rebaseImage } from '../../image/reshape.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const rebaseCommand = () =>
  new Command('rebase')
    .description('put an image over another frozen parent, same content; its own map keeps only what differs (metadata only)')
    .argument('<name>', 'image')
    .requiredOption('--onto <parent>', 'the new parent (a frozen image)')
    .action(async (name: string, o: { onto: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          if (!o.onto) throw badInput('rebase needs --onto PARENT');
          const store = await ctx.store();
          return longWork(ctx, `rebasing ${name}`, () => `${name} is unchanged`, (onProgress) => rebaseImage(store, name, o.onto, { onProgress }));
        },
        (r) => `${r.image} now sits on ${r.parent}: own ${humanBytes(r.ownBytes)} (was ${humanBytes(r.ownBytesBefore)})\n`,
      ),
    );
