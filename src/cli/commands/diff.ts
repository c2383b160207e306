import { Command } from 'commander';
import { diffImages } from '../../image/inspect.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { bytesText } from '../../units.js';
import { table } from '../render.js';

export const diffCommand = () =>
  new Command('diff')
    .description('byte ranges where two images differ, decided from their maps (no data is read); exit 0 same content, 1 different')
    .argument('<a>', 'image')
    .argument('<b>', 'image')
    .action(async (a: string, b: string, _o, cmd: Command) => {
      let differ = false;
      await runCommand(
        cmd,
        async (ctx) => {
          const r = diffImages(await ctx.store(), a, b);
          differ = r.extents.length > 0;
          return r;
        },
        (r) => {
          const head = r.virtualSizeA !== r.virtualSizeB ? `sizes differ: ${r.a} ${bytesText(r.virtualSizeA)}, ${r.b} ${bytesText(r.virtualSizeB)}\n` : '';
          if (r.extents.length === 0) return `${head}${r.a} and ${r.b} have the same content${head ? ' up to the smaller size, and zeros beyond' : ''}\n`;
          const rows = table(r.extents.map((e) => ({ start: e.offset, length: e.length })), [
            ['start', 'START'],
            ['length', 'LENGTH'],
          ]);
          return `${head}${rows}${humanBytes(r.differingBytes)} differ in ${r.extents.length} extent(s)\n`;
        },
      );
      // Like cmp and qemu-img compare: 0 same content, 1 different, so `strata diff a b && ...` works.
      if (differ) process.exitCode = 1;
    });
