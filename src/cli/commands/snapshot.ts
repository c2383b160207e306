import { Command } from 'commander';
import { snapshotImage, snapshotSummary } from '../../image/lifecycle.js';
import { orAskServer } from '../live.js';
import { runCommand } from '../context.js';

export const snapshotCommand = () =>
  new Command('snapshot')
    .description("freeze a leaf's current content as a read-only layer; the leaf keeps its name and goes on above it (a served leaf: the server takes it between two writes)")
    .argument('<leaf>', 'writable image')
    .argument('[name]', 'name of the snapshot (default LEAF.snapN)')
    .action(async (leaf: string, name: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          return orAskServer(() => snapshotSummary(snapshotImage(store, leaf, name)), { op: 'snapshot', image: leaf, snapshot: name });
        },
        (r) => `snapshot ${r.snapshot} (${r.kind}) taken; ${r.leaf} goes on above it\n`,
      ),
    );
