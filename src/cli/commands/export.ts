import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { hasRemoteBlocks } from '../../store/upkeep/index.js';
import { StrataError, badInput } from '../../errors.js';
import { exportFile } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';
import { openForCopy, sourceText } from '../live.js';

const isDirectory = (file: string) => fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() ?? false;

/**
 * What an interrupted export leaves: files are written under temporary names
 * (formats/output.ts), so nothing; a device or a stream has had part of it.
 */
function interruptedExport(file: string, chain: boolean): () => string {
  const st = file === '-' ? undefined : fs.statSync(file, { throwIfNoEntry: false });
  return () => {
    if (file === '-') return 'export stopped part-way: stdout got part of the image';
    if (st && !st.isFile()) return `export stopped part-way: ${file} holds part of the image`;
    if (chain) return 'nothing exported; no file of the chain was written';
    return st ? `nothing exported; ${file} is as it was` : 'nothing exported; no partial file was left';
  };
}

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
    .option('--shared', 'read a leaf another process is writing as it changes, without a point-in-time snapshot: the copy may mix data from before and after writes made during the export')
    .option('--keep <snapshot>', 'keep the point-in-time snapshot the export reads as a frozen image of this name')
    .action(
      async (
        name: string,
        file: string,
        o: { format: string; clusterSize: string; compress?: boolean; chain?: boolean; force?: boolean; sync?: boolean; shared?: boolean; keep?: string },
        cmd: Command,
      ) =>
      runCommand(
        cmd,
        async (ctx) => {
          if (isDirectory(file)) throw badInput(`${file} is a directory: give the file to write, such as ${path.join(file, `${name}.${o.format === 'qcow2' ? 'qcow2' : 'raw'}`)}`);
          const dir = path.dirname(path.resolve(file));
          if (!isDirectory(dir)) throw new StrataError('E_NOT_FOUND', `cannot create ${file}: no such directory ${dir} (create it first)`, { file });
          const store = await ctx.store();
          const clusterSize = parseBytes(o.clusterSize, 'cluster size');
          // A leaf a server writes is read through a point-in-time snapshot the server takes (live.ts).
          const copy = await openForCopy(store, name, { shared: o.shared, keep: o.keep });
          const image = copy.img;
          /** Lets the remote caches shrink again, once the export is done; set when blocks were fetched. */
          let release: (() => Promise<void>) | undefined;
          let r: ReturnType<typeof exportFile> | undefined;
          try {
            // A lazy clone's blocks still in a bucket are fetched first (a block that cannot be: E_IO),
            // and exported through the same handle: its lease keeps them here until it is closed.
            if (hasRemoteBlocks(store)) release = (await (await import('../../remote/store-side/lazy.js')).fetchForRead(store, image)).done;
            const warn = (m: string) => ctx.warn(m);
            const kept = interruptedExport(file, !!o.chain);
            r = longWork(ctx, `exporting ${name}`, kept, (onProgress) => exportFile(store, image.name, file, { ...o, clusterSize, warn, onProgress, image }));
          } catch (e) {
            // `export - | head` took what it wanted: not a failure, as `read | head` and `cat | head` are not.
            if (file === '-' && e instanceof StrataError && e.data.closedPipe) return undefined;
            throw e;
          } finally {
            copy.done(r !== undefined);
            await release?.();
          }
          const about = sourceText(copy.source);
          // The image itself went to stdout: nothing else may follow it there.
          if (file === '-') {
            if (about) process.stderr.write(`strata: exported ${about}\n`);
            return undefined;
          }
          const { size, ...rest } = r;
          return { name, virtualSize: size, ...rest, source: copy.source };
        },
        (r) => {
          if (!r) return undefined;
          const about = sourceText(r.source);
          return `exported ${name} to ${r.files.join(', ')} (${humanBytes(r.virtualSize)} virtual, ${humanBytes(r.dataBytes)} written)${about ? `: ${about}` : ''}\n`;
        },
      ),
    );
