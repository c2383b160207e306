import path from 'node:path';
import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { createImage } from '../../image/lifecycle.js';
import { importPath } from '../../formats/import-path.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { parseBytes, humanBytes } from '../parse.js';
import { describeImage } from '../../image/listing.js';

export const createCommand = () =>
  new Command('create')
    .description('create an empty writable image (--size), or a read-only base from a raw or qcow2 file (--from)')
    .argument('<name>', 'new image name')
    .option('-s, --size <size>', 'virtual size: 4096, 64K, 10G, 1T')
    .option('--from <file>', 'import this image file (raw, qcow2, or a format qemu-nbd reads; - for stdin) as a read-only base')
    .option('-f, --format <format>', 'format of --from (default: detect by magic)')
    .action(async (name: string, o: { size?: string; from?: string; format?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          if (o.from && o.size) throw badInput('give either --size or --from, not both');
          if (o.from) {
            const warn = (m: string) => ctx.warn(m);
            const from = o.from;
            const rec = await longWork(ctx, `importing ${from === '-' ? 'stdin' : path.basename(from)}`, () => 'nothing imported', (onProgress) =>
              importPath(store, from, name, { format: o.format, warn, onProgress }),
            );
            return describeImage(store, rec.name);
          }
          if (!o.size) throw badInput('create needs --size SIZE (an empty image) or --from FILE (an import)');
          return describeImage(store, createImage(store, name, parseBytes(o.size)).name);
        },
        (r) => `created ${r.kind} ${r.name} (${humanBytes(r.virtualSize)}${o.from ? `, from ${path.basename(o.from)}` : ''})\n`,
      ),
    );
