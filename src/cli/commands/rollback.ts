import { Command } from 'commander';
import { rollbackImage } from '../../image/lifecycle.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';

export const rollbackCommand = () =>
  new Command('rollback')
    .description("drop a leaf's changes since a snapshot below it (default: its latest, the parent), like zfs rollback; refused while the leaf is open")
    .argument('<leaf>', 'writable image')
    .argument('[snapshot]', 'frozen image in the leaf’s chain to go back to (default: the parent)')
    .action(async (leaf: string, snapshot: string | undefined, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const r = rollbackImage(await ctx.store(), leaf, snapshot);
          return { leaf: r.leaf.name, to: r.to.name, discardedBytes: r.discardedBytes, virtualSize: r.leaf.virtualSize, kept: r.skipped };
        },
        (r) =>
          `rolled ${r.leaf} back to ${r.to} (dropped ${humanBytes(r.discardedBytes)} of its own changes)\n` +
          (r.kept.length ? `kept ${r.kept.join(', ')} as image${r.kept.length > 1 ? 's' : ''} of ${r.kept.length > 1 ? 'their' : 'its'} own (strata rm to drop)\n` : ''),
      ),
    );
