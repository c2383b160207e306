import { Command } from 'commander';
import { freezeImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';

export const freezeCommand = () =>
  new Command('freeze')
    .description('make a leaf read-only (a base, or a layer if it has a parent)')
    .argument('<name>', 'image')
    .action(async (name: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const r = freezeImage(await ctx.store(), name);
          return { name: r.name, kind: r.kind, changed: !r.wasFrozen };
        },
        (r) => (r.changed ? `${r.name} is now a read-only ${r.kind}\n` : `${r.name} was already a read-only ${r.kind}; nothing changed\n`),
      ),
    );
