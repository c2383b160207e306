import { Command } from 'commander';
import { diffImages } from '../../image/inspect.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { table } from '../render.js';

export const diffCommand = () =>
  new Command('diff')
    .description('byte ranges where two images differ, decided from their maps (no data is read)')
    .argument('<a>', 'image')
    .argument('<b>', 'image')
    .action(async (a: string, b: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => diffImages(await ctx.store(), a, b),
        (r) => {
          const head = r.sizeA !== r.sizeB ? `sizes differ: ${r.a} ${r.sizeA}, ${r.b} ${r.sizeB}\n` : '';
          if (r.extents.length === 0) return `${head}${r.a} and ${r.b} have the same content${head ? ' up to the smaller size, and zeros beyond' : ''}\n`;
          const rows = table(r.extents.map((e) => ({ start: e.offset, length: e.length })), [
            ['start', 'START'],
            ['length', 'LENGTH'],
          ]);
          return `${head}${rows}${humanBytes(r.differingBytes)} differ in ${r.extents.length} extent(s)\n`;
        },
      ),
    );
