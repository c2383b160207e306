import { Command } from 'commander';
import { snapshotImage, snapshotSummary } from '../../image/lifecycle.js';
import { splitSnapshotName } from '../../store/core/index.js';
import { orAskServer } from '../live.js';
import { runCommand } from '../context.js';

export const snapshotCommand = () =>
  new Command('snapshot')
    .description(
      "freeze a leaf's current content as a read-only snapshot LEAF@NAME; the leaf keeps its name and goes on above it (a served leaf: the server takes it between two writes)",
    )
    .argument('<leaf>', 'writable image, or LEAF@NAME')
    .argument('[name]', 'name of the snapshot within the leaf (default snapN: LEAF@snapN)')
    .action(async (leafArg: string, nameArg: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          // `snapshot vm02@good`, as zfs snapshot pool/vm02@good.
          const split = nameArg === undefined ? splitSnapshotName(leafArg) : null;
          const leaf = split?.image ?? leafArg;
          const name = split ? leafArg : nameArg;
          return orAskServer(() => snapshotSummary(snapshotImage(store, leaf, name)), { op: 'snapshot', image: leaf, snapshot: name });
        },
        (r) => `snapshot ${r.snapshot} (${r.kind}) taken; ${r.leaf} goes on above it\n`,
      ),
    );
