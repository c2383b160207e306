import { Command } from 'commander';
import { listImageRows, type ListedImage } from '../../image/listing.js';
import { runCommand } from '../context.js';
import { pickByName } from '../name-filter.js';
import { BYTES_OPTION, localTime, sizeFormatter, table } from '../render.js';

function renderList(rows: readonly ListedImage[], exact: boolean | undefined, patterns: readonly string[]): string {
  if (rows.length === 0 && patterns.length > 0) return `no images match ${patterns.join(' ')}\n`;
  if (rows.length === 0) return 'no images (create one: strata create NAME --size 10G, or strata create NAME --from disk.raw)\n';
  const size = sizeFormatter(exact);
  const anyLazy = rows.some((r) => r.lazy);
  return table(
    rows.map(({ lazy, ...r }) => ({
      ...r,
      parent: r.parent ?? '-',
      virtualSize: size(r.virtualSize),
      ownBytes: size(r.ownBytes),
      createdAt: localTime(r.createdAt),
      // A lazy clone's blocks still in a bucket: reading them needs it.
      remoteOnly: lazy ? `lazy: ${size(lazy.remoteOnlyBytes)} in ${Object.keys(lazy.remotes).join(', ')}` : '-',
    })),
    [
      ['name', 'NAME'],
      ['kind', 'KIND'],
      ['parent', 'PARENT'],
      ['virtualSize', 'SIZE'],
      ['ownBytes', 'OWN'],
      ['createdAt', 'CREATED'],
      ...(anyLazy ? ([['remoteOnly', 'ONLY REMOTE']] as [string, string][]) : []),
    ],
  );
}

export const lsCommand = () =>
  new Command('ls')
    .description('list images, or those named or matching a shell pattern (quoted: \'web*\')')
    .argument('[patterns...]', "image names or globs such as 'web*'")
    .option(...BYTES_OPTION)
    .action(async (patterns: string[], o: { bytes?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx): Promise<ListedImage[]> => pickByName(listImageRows(await ctx.store()), patterns),
        (rows) => renderList(rows, o.bytes, patterns),
      ),
    );
