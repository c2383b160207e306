import path from 'node:path';
import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { importFile, listQcow2Snapshots } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes, parseBytes } from '../parse.js';
import { localTime, table } from '../render.js';
import { describeImage, type ImageInfo } from './info.js';

interface ImportFlags {
  parent?: string;
  format?: string;
  writable?: boolean;
  withBacking?: boolean;
  namePrefix?: string;
  snapshot?: string;
  listSnapshots?: boolean;
  dirtyLimit?: string;
}

type Snapshots = { id: string; name: string; virtualSize: number; createdAt: string }[];

export const importCommand = () =>
  new Command('import')
    .description('import a raw or qcow2 file as a new read-only image; over --parent only the blocks that differ are stored')
    .argument('<file>', 'raw or qcow2 file')
    .argument('[name]', 'new image name')
    .option('-p, --parent <image>', 'store the file as a layer over this image')
    .option('-f, --format <format>', 'raw or qcow2 (default: detect by magic)')
    .option('--writable', 'make the new image a writable leaf instead of frozen')
    .option('--with-backing', "qcow2: import the file's backing chain too, as layers named after their files")
    .option('--name-prefix <prefix>', 'with --with-backing: prefix for the backing layers\' names')
    .option('--snapshot <name>', "qcow2: import this internal snapshot's state instead of the active one")
    .option('--list-snapshots', "qcow2: list the file's internal snapshots and import nothing")
    .option('--dirty-limit <bytes>', 'flush every this many bytes of data, bounding memory (default 64M)')
    .action(async (file: string, name: string | undefined, o: ImportFlags, cmd: Command) =>
      runCommand<ImageInfo | Snapshots>(
        cmd,
        async (ctx) => {
          if (o.listSnapshots) {
            return listQcow2Snapshots(file).map((s) => ({ id: s.id, name: s.name, virtualSize: s.virtualSize, createdAt: s.date.toISOString() }));
          }
          if (!name) throw badInput('import needs a name for the new image: strata import FILE NAME');
          const store = await ctx.store();
          const warn = (m: string) => process.stderr.write(`strata: warning: ${m}\n`);
          const dirtyLimit = o.dirtyLimit === undefined ? undefined : parseBytes(o.dirtyLimit, 'dirty limit');
          const rec = longWork(ctx, `importing ${path.basename(file)}`, () => 'nothing imported', (onProgress) =>
            importFile(store, file, name, { ...o, dirtyLimit, warn, onProgress }),
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
