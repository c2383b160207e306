import { Command } from 'commander';
import { diskUsageOf, type ImageUsage } from '../../image/inspect.js';
import { runCommand } from '../context.js';
import { BYTES_OPTION, sizeFormatter, table } from '../render.js';

export function renderUsage(rows: readonly ImageUsage[], exact?: boolean): string {
  if (rows.length === 0) return 'no images\n';
  const size = sizeFormatter(exact);
  return table(
    rows.map((r) => ({
      name: r.name,
      kind: r.kind,
      referenced: size(r.referencedBytes),
      own: size(r.ownBytes),
      exclusive: size(r.exclusiveBytes),
      shared: size(r.sharedBytes),
    })),
    [
      ['name', 'NAME'],
      ['kind', 'KIND'],
      ['referenced', 'REFERENCED'],
      ['own', 'OWN'],
      ['exclusive', 'EXCLUSIVE'],
      ['shared', 'SHARED'],
    ],
  );
}

export const duCommand = () =>
  new Command('du')
    .description('space per image: referenced (whole chain), own (its layer), exclusive (freed by removing it alone), shared (own, used elsewhere too)')
    .argument('[names...]', 'images (default: all)')
    .option(...BYTES_OPTION)
    .action(async (names: string[], o: { bytes?: boolean }, cmd: Command) =>
      runCommand(cmd, async (ctx) => diskUsageOf(await ctx.store(), names), (rows) => renderUsage(rows, o.bytes)),
    );
