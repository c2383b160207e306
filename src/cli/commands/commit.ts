import { Command } from 'commander';
import { commitImage } from '../../image/reshape.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const commitCommand = () =>
  new Command('commit')
    .description("merge a leaf's changes into its parent (which must have no other child); the leaf goes on empty above it")
    .argument('<leaf>', 'writable image')
    .option('--force', 'commit even into a snapshot, which then no longer holds what it held when taken')
    .action(async (leaf: string, o: { force?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          return longWork(ctx, `committing ${leaf}`, () => `${leaf} and its parent are unchanged`, (onProgress) => commitImage(store, leaf, { force: o.force, onProgress }));
        },
        (r) => `committed ${humanBytes(r.ownBytesBefore)} of ${r.image} into ${r.into} (own now ${humanBytes(r.intoOwnBytes)}); ${r.image} is empty above it\n`,
      ),
    );
