import { Command } from 'commander';
import { splitSnapshotName } from '../../store/core/index.js';
import { rollbackImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';

export const rollbackCommand = () =>
  new Command('rollback')
    .description("drop a leaf's changes since a snapshot below it (default: its latest, the parent), like zfs rollback; refused while the leaf is open")
    .argument('<leaf>', 'writable image, or LEAF@SNAP')
    .argument('[snapshot]', 'snapshot of the leaf (SNAP or LEAF@SNAP), or any frozen image in its chain, to go back to (default: the parent)')
    .action(async (leafArg: string, snapshotArg: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          // `rollback vm@snap1`, as zfs rollback pool/vm@snap1.
          const split = snapshotArg === undefined ? splitSnapshotName(leafArg) : null;
          const r = rollbackImage(await ctx.store(), split?.image ?? leafArg, split ? leafArg : snapshotArg);
          return { leaf: r.leaf.name, to: r.to.name, discardedBytes: r.discardedBytes, virtualSize: r.leaf.virtualSize, kept: r.skipped };
        },
        (r) =>
          `rolled ${r.leaf} back to ${r.to} (dropped ${humanBytes(r.discardedBytes)} of its own changes)\n` +
          (r.kept.length ? `kept ${r.kept.join(', ')} as image${r.kept.length > 1 ? 's' : ''} of ${r.kept.length > 1 ? 'their' : 'its'} own (strata rm to drop)\n` : ''),
      ),
    );
