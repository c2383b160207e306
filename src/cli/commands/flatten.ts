import { Command } from 'commander';
import { flattenImage } from '../../image/reshape.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const flattenCommand = () =>
  new Command('flatten')
    .description('make an image independent of its parents, same content (metadata only)')
    .argument('<name>', 'image')
    .action(async (name: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          return longWork(ctx, `flattening ${name}`, () => `${name} is unchanged`, (onProgress) => flattenImage(store, name, { onProgress }));
        },
        (r) => `${r.image} is flat: own ${humanBytes(r.ownBytes)} (was ${humanBytes(r.ownBytesBefore)})\n`,
      ),
    );
