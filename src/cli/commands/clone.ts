import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { cloneImage, cloneSummary } from '../../image/lifecycle.js';
import { orAskServer } from '../live.js';
import { runCommand } from '../context.js';
import { warnSkipped } from '../skipped.js';
import { parseRef } from './pull.js';
import { printable } from '../../untrusted.js';

export const cloneCommand = () =>
  new Command('clone')
    .description(
      'new writable leaves over an image, instantly (metadata only); a leaf source is snapshotted first (a served leaf: by the server, between two writes). ' +
        'REMOTE/IMAGE: one leaf over a remote image, its blocks fetched on first read (lazy clone)',
    )
    .argument('<source>', 'image to clone, or REMOTE/IMAGE[@MANIFEST]')
    .argument('<new...>', 'names of the new leaves')
    .action(async (source: string, names: string[], _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          if (source.includes('/')) {
            // Local names never hold a slash: this is a remote image.
            if (names.length !== 1) throw badInput('a lazy clone of a remote image makes one leaf; clone that leaf for more');
            const { remote: remoteName, image, manifest } = parseRef(source);
            const [{ lazyClone }, { openRemote }] = await Promise.all([import('../../remote/store-side/lazy.js'), import('../../remote/remote.js')]);
            const remote = openRemote(ctx.storeDir, remoteName);
            try {
              const r = await lazyClone(store, remote, image, names[0], { manifest });
              ctx.logger.info({ source, clone: r.leaf, remoteBlocks: r.remoteBlocks }, 'lazy clone made');
              if (r.unrecorded) ctx.warn(`${remoteName} does not record this clone (${printable(r.unrecorded)}): another host's remote delete and remote gc will not know it needs ${image}`);
              const top = r.layers[r.layers.length - 1];
              return { parent: top.name, snapshot: null, clones: [r.leaf], lazy: r, skipped: remote.skipped };
            } finally {
              warnSkipped(remote);
              remote.close();
            }
          }
          const made = await orAskServer(() => cloneSummary(cloneImage(store, source, names)), { op: 'clone', image: source, names });
          ctx.logger.info({ source, parent: made.parent, snapshot: made.snapshot, clones: made.clones }, 'cloned');
          return made;
        },
        (r) =>
          (r.snapshot ? `snapshotted ${source} as ${r.snapshot}\n` : '') +
          ('lazy' in r && r.lazy
            ? `cloned ${r.clones[0]} from ${source} (${r.lazy.layers.filter((l) => !l.reused).length} of ${r.lazy.layers.length} layer(s) new; ${r.lazy.remoteBlocks} block(s) left in the bucket until first read, ${r.lazy.localBlocks} found here)\n`
            : r.clones.length <= 10
              ? r.clones.map((c) => `cloned ${c} from ${r.parent}\n`).join('')
              : `cloned ${r.clones.length} leaves from ${r.parent}\n`),
      ),
    );
