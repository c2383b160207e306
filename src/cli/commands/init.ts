import { Command } from 'commander';
import { compressionText, parseCompression, setStoreCompression, storeCompression } from '../../store/codecs.js';
import { runCommand } from '../context.js';

export const initCommand = () =>
  new Command('init')
    .description('create the store (done on first use by every command); with --compress, set how new imports store their blocks')
    .option('--compress <codec>', 'compression for imports from now on: zstd, zstd-LEVEL (1-19), lz4, lz4hc, lz4hc-LEVEL (1-12) or none; blocks already stored stay as they are (strata compress)')
    .action(async (o: { compress?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const spec = o.compress === undefined ? undefined : parseCompression(o.compress);
          const store = await ctx.store();
          if (spec !== undefined) store.write(() => setStoreCompression(store.db, spec));
          return { store: ctx.storeDir, compression: compressionText(storeCompression(store.db)) };
        },
        (r) => `store ready at ${r.store} (compression: ${r.compression})\n`,
      ),
    );
