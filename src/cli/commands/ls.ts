import { Command } from 'commander';
import { listVisibleImages } from '../../store/catalog.js';
import { BLOCK_SIZE } from '../../store/types.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { table } from '../render.js';

export const lsCommand = () =>
  new Command('ls').description('list images').action(async (_o, cmd: Command) =>
    runCommand(
      cmd,
      async (ctx) => {
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
      (rows) =>
        rows.length === 0
          ? 'no images (create one: strata create NAME --size 10G, or strata create NAME --from disk.raw)\n'
          : table(
              rows.map((r) => ({ ...r, parent: r.parent ?? '-', virtualSize: humanBytes(r.virtualSize), ownBytes: humanBytes(r.ownBytes), createdAt: r.createdAt.slice(0, 19).replace('T', ' ') })),
              [
                ['name', 'NAME'],
                ['kind', 'KIND'],
                ['parent', 'PARENT'],
                ['virtualSize', 'SIZE'],
                ['ownBytes', 'OWN'],
                ['createdAt', 'CREATED'],
              ],
            ),
    ),
  );
