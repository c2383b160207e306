import { Command } from 'commander';
import { exportFile } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';

export const exportCommand = () =>
  new Command('export')
    .description('write an image to a raw file (sparse where it reads zeros), or to qcow2 with --format qcow2')
    .argument('<name>', 'image')
    .argument('<file>', 'output file')
    .option('-f, --format <format>', 'raw or qcow2', 'raw')
    .option('--cluster-size <size>', 'qcow2 cluster size, 512 to 2M', '64K')
    .option('-c, --compress', 'qcow2: deflate-compress clusters')
    .option('--chain', 'qcow2: one file per layer, each backed by the one below (written beside FILE as NAME.qcow2)')
    .option('--sync', 'raw: fsync the output before exiting (default: leave it to the page cache, like qemu-img convert)')
    .action(async (name: string, file: string, o: { format: string; clusterSize: string; compress?: boolean; chain?: boolean; sync?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const clusterSize = parseBytes(o.clusterSize, 'cluster size');
          const warn = (m: string) => process.stderr.write(`strata: warning: ${m}\n`);
          const kept = () => `nothing exported; the partial ${o.chain ? 'files were' : `${file} was`} removed`;
          return longWork(ctx, `exporting ${name}`, kept, (onProgress) => exportFile(store, name, file, { ...o, clusterSize, warn, onProgress }));
        },
        (r) => `exported ${name} to ${r.files.join(', ')} (${humanBytes(r.size)} virtual, ${humanBytes(r.dataBytes)} written)\n`,
      ),
    );
