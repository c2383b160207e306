import path from 'node:path';
import { Command } from 'commander';
import { listQcow2Snapshots } from '../../formats/files.js';
import { importPath } from '../../formats/import-path.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';
import { localTime, table } from '../render.js';
import { describeImage, type ImageInfo } from '../../image/listing.js';

interface ImportFlags {
  parent?: string;
  format?: string;
  writable?: boolean;
  withBacking?: boolean;
  namePrefix?: string;
  snapshot?: string;
  listSnapshots?: boolean;
  dirtyLimit?: string;
  force?: boolean;
}

type Snapshots = { id: string; name: string; virtualSize: number; createdAt: string }[];

export const importCommand = () =>
  new Command('import')
    .description('import a disk image file (raw, qcow2; VHD, VHDX, VMDK, VDI, QED, ... through qemu-nbd) as a new read-only image; over --parent only the blocks that differ are stored')
    .argument('<file>', 'image file, or - for stdin (raw)')
    .argument('[name]', 'new image name (default: the file name without its extension)')
    .option('-p, --parent <image>', 'store the file as a layer over this image')
    .option('-f, --format <format>', 'raw, qcow2, or vhd, vhdx, vmdk, vdi, qed, ... (default: detect by magic)')
    .option('--writable', 'make the new image a writable leaf instead of frozen')
    .option('--with-backing', "qcow2: import the file's backing chain too, as layers named after their files")
    .option('--name-prefix <prefix>', 'with --with-backing: prefix for the backing layers\' names')
    .option('--snapshot <name>', "qcow2: import this internal snapshot's state instead of the active one")
    .option('--list-snapshots', "qcow2: list the file's internal snapshots and import nothing")
    .option('--dirty-limit <bytes>', 'flush every this many bytes of data, bounding memory (default 64M)')
    .option('--force', "qcow2 with --parent: import over a parent that was imported from another file than the overlay's backing file")
    .action(async (file: string, name: string | undefined, o: ImportFlags, cmd: Command) =>
      runCommand<ImageInfo | Snapshots>(
        cmd,
        async (ctx) => {
          if (o.listSnapshots) {
            return listQcow2Snapshots(file).map((s) => ({ id: s.id, name: s.name, virtualSize: s.virtualSize, createdAt: s.date.toISOString() }));
          }
          const store = await ctx.store();
          const warn = (m: string) => process.stderr.write(`strata: warning: ${m}\n`);
          const dirtyLimit = o.dirtyLimit === undefined ? undefined : parseBytes(o.dirtyLimit, 'dirty limit');
          const rec = await longWork(ctx, `importing ${file === '-' ? 'stdin' : path.basename(file)}`, () => 'nothing imported', (onProgress) =>
            importPath(store, file, name, { ...o, dirtyLimit, warn, onProgress }),
          );
          return describeImage(store, rec.name);
        },
        (r) =>
          Array.isArray(r)
            ? r.length === 0
              ? `${file} has no internal snapshots\n`
              : table(
                  r.map((s) => ({ id: s.id, name: s.name, size: humanBytes(s.virtualSize), date: localTime(s.createdAt) })),
                  [
                    ['id', 'ID'],
                    ['name', 'TAG'],
                    ['size', 'VM SIZE'],
                    ['date', 'DATE'],
                  ],
                )
            : `imported ${r.name}: ${r.kind}, ${humanBytes(r.virtualSize)} virtual, ${humanBytes(r.ownBytes)} in this layer${r.parent ? ` over ${r.parent}` : ''}\n`,
      ),
    );
