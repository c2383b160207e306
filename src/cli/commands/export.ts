import { Command } from 'commander';
import { exportFile } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { humanBytes, parseBytes } from '../parse.js';

export const exportCommand = () =>
  new Command('export')
    .description('write an image to a raw file (sparse where it reads zeros), a device or stdout (-), or to qcow2 with --format qcow2')
    .argument('<name>', 'image')
    .argument('<file>', 'output file, block device, or - for stdout (raw only)')
    .option('-f, --format <format>', 'raw or qcow2', 'raw')
    .option('--cluster-size <size>', 'qcow2 cluster size, 512 to 2M', '64K')
    .option('-c, --compress', 'qcow2: deflate-compress clusters')
    .option('--chain', 'qcow2: one file per layer, each backed by the one below (written beside FILE as NAME.qcow2)')
    .option('--force', 'with --chain: overwrite existing files where the lower layers go')
    .option('--sync', 'raw: fsync the output before exiting (default: leave it to the page cache, like qemu-img convert)')
    .action(async (name: string, file: string, o: { format: string; clusterSize: string; compress?: boolean; chain?: boolean; force?: boolean; sync?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const r = exportFile(await ctx.store(), name, file, { ...o, clusterSize: parseBytes(o.clusterSize, 'cluster size') });
          // The image itself went to stdout: nothing else may follow it there.
          return file === '-' ? undefined : r;
        },
        (r) => (r ? `exported ${name} to ${r.files.join(', ')} (${humanBytes(r.size)} virtual, ${humanBytes(r.dataBytes)} written)\n` : undefined),
      ),
    );
