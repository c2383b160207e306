import path from 'node:path';
import { Command } from 'commander';
import { parseCompression } from '../../store/blocks/index.js';
import { listQcow2Snapshots, type ImportedLink } from '../../formats/files.js';
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
  backingDir?: string[];
  namePrefix?: string;
  snapshot?: string;
  listSnapshots?: boolean;
  dirtyLimit?: string;
  force?: boolean;
  size?: string;
  maxSize?: string;
  platform?: string;
  compress?: string;
}

type Snapshots = { id: string; name: string; virtualSize: number; createdAt: string }[];
/** With --with-backing, the files read, top first: what went into the store from where. */
type Imported = ImageInfo & { files?: ImportedLink[] };

/** The imported image's line, then with --with-backing one line per file of its chain. */
export function renderImported(r: Imported): string {
  const head = `imported ${r.name}: ${r.kind}, ${humanBytes(r.virtualSize)} virtual, ${humanBytes(r.ownBytes)} in this layer${r.parent ? ` over ${r.parent}` : ''}\n`;
  const files = r.files ?? [];
  const w = Math.max(0, ...files.map((f) => f.image.length));
  return head + files.map((f) => `  ${f.image.padEnd(w)}  ${f.file} (${f.format}${f.reused ? ', imported before' : ''})\n`).join('');
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export const importCommand = () =>
  new Command('import')
    .description('import a disk image file (raw, qcow2; VHD, VHDX, VMDK, VDI, QED, ... through qemu-nbd), or a container image (oci:PATH[:REF], docker-archive:FILE[:REF]) as ext4 layers, as a new read-only image; over --parent only the blocks that differ are stored')
    .argument('<file>', 'image file, - for stdin (raw), oci:PATH[:REF] or docker-archive:FILE[:REF]')
    .argument('[name]', 'new image name (default: the file name without its extension; for a container, its reference)')
    .option('-p, --parent <image>', 'store the file as a layer over this image')
    .option('-f, --format <format>', 'raw, qcow2, or vhd, vhdx, vmdk, vdi, qed, ... (default: detect by magic)')
    .option('--writable', 'make the new image a writable leaf instead of frozen')
    .option('--with-backing', "qcow2: import the file's backing chain too, as layers named after their files")
    .option('--backing-dir <dir>', "with --with-backing: also follow backing files in or below this directory (repeatable; by default only the top file's directory)", collect)
    .option('--name-prefix <prefix>', 'with --with-backing: prefix for the backing layers\' names')
    .option('--snapshot <name>', "qcow2: import this internal snapshot's state instead of the active one")
    .option('--list-snapshots', "qcow2: list the file's internal snapshots and import nothing")
    .option('--dirty-limit <bytes>', 'flush every this many bytes of data, bounding memory (default 64M)')
    .option('--size <bytes>', "container: every layer's ext4 file system size (default: the files' size plus headroom)")
    .option('--max-size <bytes>', 'container: refuse layers that expand beyond this many bytes in all (default 64G)')
    .option('--platform <os/arch>', 'container: the platform to take from a multi-platform index (default: the only one, else this host\'s)')
    .option('--compress <codec>', "store new blocks compressed: zstd, zstd-LEVEL, lz4, lz4hc[-LEVEL] or none (default: the store's setting, see strata init --compress)")
    .option('--force', "qcow2 with --parent: import over a parent that was imported from another file than the overlay's backing file")
    .action(async (file: string, name: string | undefined, o: ImportFlags, cmd: Command) =>
      runCommand<Imported | Snapshots>(
        cmd,
        async (ctx) => {
          if (o.listSnapshots) {
            return listQcow2Snapshots(file).map((s) => ({ id: s.id, name: s.name, virtualSize: s.virtualSize, createdAt: s.date.toISOString() }));
          }
          // A large import looks up and adds index rows all over a growing B-tree: with SQLite's
          // cache at 16 MiB, a 4 GiB import spent a third of its time re-reading index pages (22.6 s
          // against 16.0 s with 64 MiB).
          const store = await ctx.store({ sqliteCacheBytes: 64 * 1024 * 1024 });
          const warn = (m: string) => ctx.warn(m);
          const bytes = (v: string | undefined, what: string) => (v === undefined ? undefined : parseBytes(v, what));
          const sizes = { dirtyLimit: bytes(o.dirtyLimit, 'dirty limit'), size: bytes(o.size, 'size'), maxSize: bytes(o.maxSize, 'max size') };
          let files: ImportedLink[] | undefined;
          const { backingDir, ...flags } = o;
          const rec = await longWork(ctx, `importing ${file === '-' ? 'stdin' : path.basename(file)}`, () => 'nothing imported', (onProgress) =>
            importPath(store, file, name, {
              ...flags,
              ...sizes,
              backingDirs: backingDir,
              compress: o.compress === undefined ? undefined : parseCompression(o.compress),
              warn,
              onProgress,
              onChain: (c) => (files = c),
            }),
          );
          return { ...describeImage(store, rec.name), ...(files ? { files } : {}) };
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
            : renderImported(r),
      ),
    );
