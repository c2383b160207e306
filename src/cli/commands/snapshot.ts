import { Command } from 'commander';
import { snapshotImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';

export const snapshotCommand = () =>
  new Command('snapshot')
    .description("freeze a leaf's current content as a read-only layer; the leaf keeps its name and goes on above it")
    .argument('<leaf>', 'writable image')
    .argument('[name]', 'name of the snapshot (default LEAF.snapN)')
    .action(async (leaf: string, name: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const r = snapshotImage(await ctx.store(), leaf, name);
          return { snapshot: r.snapshot.name, kind: r.snapshot.kind, leaf: r.leaf.name };
        },
        (r) => `snapshot ${r.snapshot} (${r.kind}) taken; ${r.leaf} goes on above it\n`,
      ),
    );
