import { Command } from 'commander';
import { importFile } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { humanBytes, parseBytes } from '../parse.js';
import { describeImage } from './info.js';

export const importCommand = () =>
  new Command('import')
    .description('import a raw or qcow2 file as a new read-only image; over --parent only the blocks that differ are stored')
    .argument('<file>', 'raw or qcow2 file')
    .argument('<name>', 'new image name')
    .option('-p, --parent <image>', 'store the file as a layer over this image')
    .option('-f, --format <format>', 'raw or qcow2 (default: detect by magic)')
    .option('--writable', 'make the new image a writable leaf instead of frozen')
    .option('--dirty-limit <bytes>', 'flush every this many bytes of data, bounding memory (default 64M)')
    .action(async (file: string, name: string, o: { parent?: string; format?: string; writable?: boolean; dirtyLimit?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const dirtyLimit = o.dirtyLimit === undefined ? undefined : parseBytes(o.dirtyLimit, 'dirty limit');
          return describeImage(store, importFile(store, file, name, { ...o, dirtyLimit }).name);
        },
        (r) => `imported ${r.name}: ${r.kind}, ${humanBytes(r.virtualSize)} virtual, ${humanBytes(r.ownBytes)} stored in this layer\n`,
      ),
    );
