import { Command } from 'commander';
import { diskUsageOf, type ImageUsage } from '../../image/inspect.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { table } from '../render.js';

const both = (n: number) => `${humanBytes(n)} (${n})`;

export function renderUsage(rows: readonly ImageUsage[]): string {
  if (rows.length === 0) return 'no images\n';
  return table(
    rows.map((r) => ({
      name: r.name,
      kind: r.kind,
      referenced: both(r.referencedBytes),
      own: both(r.ownBytes),
      exclusive: both(r.exclusiveBytes),
      shared: both(r.sharedBytes),
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
    .action(async (names: string[], _o, cmd: Command) =>
      runCommand(cmd, async (ctx) => diskUsageOf(await ctx.store(), names), renderUsage),
    );
