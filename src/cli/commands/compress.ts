import { Command } from 'commander';
import { resolveImage } from '../../image/refs.js';
import { StrataError } from '../../errors.js';
import { compressionText, parseCompression, storeCompression } from '../../store/blocks/index.js';
import { compressStored } from '../../store/upkeep/index.js';
import { isFrozen } from '../../store/core/index.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const compressCommand = () =>
  new Command('compress')
    .description('store the blocks of frozen images already in the store (all of them without IMAGE) with a codec: compress, recompress, or with --codec none put them back uncompressed; maps do not change, clones and servers see the same bytes')
    .argument('[image...]', 'frozen images (base or layer) whose own blocks to compress')
    .option('--codec <codec>', "zstd, zstd-LEVEL, lz4, lz4hc[-LEVEL], or none to uncompress (default: the store's setting, else zstd)")
    .action(async (names: string[], o: { codec?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const given = o.codec === undefined ? undefined : parseCompression(o.codec);
          const store = await ctx.store();
          const spec = given === undefined ? (storeCompression(store) ?? parseCompression('zstd')) : given;
          const images = names.length === 0 ? undefined : names.map((n) => resolveImage(store, n));
          for (const r of images ?? []) {
            if (!isFrozen(r)) throw new StrataError('E_BAD_INPUT', `image ${r.name} is a writable leaf: snapshot or freeze it to compress its blocks (leaves keep theirs uncompressed)`, { image: r.name });
          }
          const kept = () => 'batches done so far stay compressed; run compress again for the rest';
          const what = spec ? `compressing with ${compressionText(spec)}` : 'uncompressing';
          const r = await longWork(ctx, what, kept, (onProgress) => compressStored(store, spec, { images, onProgress }));
          return { ...r, codec: compressionText(spec) };
        },
        (r) =>
          (r.codec === 'none'
            ? `put ${r.uncompressed} of ${r.blocks} compressed block(s) back uncompressed`
            : `compressed ${r.compressed} of ${r.blocks} block(s) with ${r.codec}: ${humanBytes(r.bytesBefore)} -> ${humanBytes(r.bytesAfter)}` +
              (r.uncompressed ? `; ${r.uncompressed} would not shrink enough and went back uncompressed` : '')) +
          (r.incompressible ? `; ${r.incompressible} would not shrink and stay as they are` : '') +
          (r.busy ? `; ${r.busy} in use by open images (or a running check) were left for a later run` : '') +
          (r.damaged ? `; ${r.damaged} do not match their hash and were left in place: run strata check` : '') +
          ` in ${r.elapsedMs} ms\n`,
      ),
    );
