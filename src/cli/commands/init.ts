import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { DB_FILE } from '../../store/core/index.js';
import { compressionText, parseCompression, setStoreCompression, storeCompression } from '../../store/blocks/index.js';
import { runCommand } from '../context.js';

export const initCommand = () =>
  new Command('init')
    .description('create the store (create, import and demo also make one when it is missing; other commands need it); with --compress, set how new imports store their blocks')
    .option('--compress <codec>', 'compression for imports from now on: zstd, zstd-LEVEL (1-19), lz4, lz4hc, lz4hc-LEVEL (1-12) or none; blocks already stored stay as they are (strata compress)')
    .action(async (o: { compress?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const spec = o.compress === undefined ? undefined : parseCompression(o.compress);
          const existed = fs.existsSync(path.join(ctx.storeDir, DB_FILE));
          const store = await ctx.store();
          if (spec !== undefined) store.write((tx) => setStoreCompression(tx, spec));
          return { store: ctx.storeDir, created: !existed, compression: compressionText(storeCompression(store)) };
        },
        // Said either way, so a mistyped --store or a second init is never mistaken for the other.
        (r) => (r.created ? `created a new store at ${r.store} (compression: ${r.compression})\n` : `store at ${r.store} already exists, images kept (compression: ${r.compression})\n`),
      ),
    );
