import { Command } from 'commander';
import { listVisibleImages } from '../../store/catalog.js';
import { BLOCK_SIZE } from '../../store/types.js';
import { runCommand } from '../context.js';
import { BYTES_OPTION, localTime, sizeFormatter, table } from '../render.js';

interface Listed {
  name: string;
  kind: string;
  parent: string | null;
  virtualSize: number;
  ownBytes: number;
  createdAt: string;
}

function renderList(rows: readonly Listed[], exact?: boolean): string {
  if (rows.length === 0) return 'no images (create one: strata create NAME --size 10G, or strata create NAME --from disk.raw)\n';
  const size = sizeFormatter(exact);
  return table(
    rows.map((r) => ({ ...r, parent: r.parent ?? '-', virtualSize: size(r.virtualSize), ownBytes: size(r.ownBytes), createdAt: localTime(r.createdAt) })),
    [
      ['name', 'NAME'],
      ['kind', 'KIND'],
      ['parent', 'PARENT'],
      ['virtualSize', 'SIZE'],
      ['ownBytes', 'OWN'],
      ['createdAt', 'CREATED'],
    ],
  );
}

export const lsCommand = () =>
  new Command('ls')
    .description('list images')
    .option(...BYTES_OPTION)
    .action(async (o: { bytes?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx): Promise<Listed[]> => {
          const all = listVisibleImages((await ctx.store()).db);
          const byId = new Map(all.map((i) => [i.id, i.name]));
          return all.map((i) => ({
            name: i.name,
            kind: i.kind,
            parent: i.parentId === null ? null : (byId.get(i.parentId) ?? null),
            virtualSize: i.virtualSize,
            ownBytes: i.ownBlocks * BLOCK_SIZE,
            createdAt: new Date(i.createdAt).toISOString(),
          }));
        },
        (rows) => renderList(rows, o.bytes),
      ),
    );
