import { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { getImage } from '../../store/catalog.js';
import { compressionText, parseCompression, storeCompression } from '../../store/codecs.js';
import { compressStored } from '../../store/relocate.js';
import { isFrozen } from '../../store/types.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const compressCommand = () =>
  new Command('compress')
    .description('compress the blocks of frozen images already in the store (all of them without IMAGE); maps do not change, clones and servers see the same bytes')
    .argument('[image...]', 'frozen images (base or layer) whose own blocks to compress')
    .option('--codec <codec>', "zstd, zstd-LEVEL, lz4 or lz4hc[-LEVEL] (default: the store's setting, else zstd)")
    .action(async (names: string[], o: { codec?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const given = o.codec === undefined ? undefined : parseCompression(o.codec);
          if (given === null) throw new StrataError('E_BAD_INPUT', '--codec none: there is nothing to do (strata keeps compressed blocks as they are)');
          const store = await ctx.store();
          const spec = given ?? storeCompression(store.db) ?? parseCompression('zstd')!;
          const images = names.length === 0 ? undefined : names.map((n) => getImage(store.db, n));
          for (const r of images ?? []) {
            if (!isFrozen(r)) throw new StrataError('E_BAD_INPUT', `image ${r.name} is a writable leaf: snapshot or freeze it to compress its blocks (leaves keep theirs uncompressed)`, { image: r.name });
          }
          const kept = () => 'batches done so far stay compressed; run compress again for the rest';
          const r = await longWork(ctx, `compressing with ${compressionText(spec)}`, kept, (onProgress) => compressStored(store, spec, { images, onProgress }));
          return { ...r, codec: compressionText(spec) };
        },
        (r) =>
          `compressed ${r.compressed} of ${r.blocks} block(s) with ${r.codec}: ${humanBytes(r.bytesBefore)} -> ${humanBytes(r.bytesAfter)}` +
          (r.incompressible ? `; ${r.incompressible} would not shrink and stay as they are` : '') +
          (r.busy ? `; ${r.busy} in use by open images (or a running check) were left for a later run` : '') +
          (r.damaged ? `; ${r.damaged} do not match their hash and were left in place: run strata check` : '') +
          ` in ${r.elapsedMs} ms\n`,
      ),
    );
