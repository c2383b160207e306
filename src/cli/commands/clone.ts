import { Command } from 'commander';
import { cloneImage, cloneSummary } from '../../image/lifecycle.js';
import { orAskServer } from '../live.js';
import { runCommand } from '../context.js';

export const cloneCommand = () =>
  new Command('clone')
    .description('new writable leaves over an image, instantly (metadata only); a leaf source is snapshotted first (a served leaf: by the server, between two writes)')
    .argument('<source>', 'image to clone')
    .argument('<new...>', 'names of the new leaves')
    .action(async (source: string, names: string[], _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          return orAskServer(() => cloneSummary(cloneImage(store, source, names)), { op: 'clone', image: source, names });
        },
        (r) =>
          (r.snapshot ? `snapshotted ${source} as ${r.snapshot}\n` : '') +
          (r.clones.length <= 10 ? r.clones.map((c) => `cloned ${c} from ${r.parent}\n`).join('') : `cloned ${r.clones.length} leaves from ${r.parent}\n`),
      ),
    );
