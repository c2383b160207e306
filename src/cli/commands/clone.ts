import { Command } from 'commander';
import { cloneImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';

export const cloneCommand = () =>
  new Command('clone')
    .description('new writable leaves over an image, instantly (metadata only); a leaf source is snapshotted first')
    .argument('<source>', 'image to clone')
    .argument('<new...>', 'names of the new leaves')
    .action(async (source: string, names: string[], _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const r = cloneImage(await ctx.store(), source, names);
          return { parent: r.parent.name, snapshot: r.snapshot?.name ?? null, clones: r.clones.map((c) => c.name) };
        },
        (r) =>
          (r.snapshot ? `snapshotted ${source} as ${r.snapshot}\n` : '') +
          (r.clones.length <= 10 ? r.clones.map((c) => `cloned ${c} from ${r.parent}\n`).join('') : `cloned ${r.clones.length} leaves from ${r.parent}\n`),
      ),
    );
