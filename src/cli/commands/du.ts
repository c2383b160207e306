import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { diskUsageOf, type ImageUsage } from '../../image/inspect.js';
import { sharingOf, type Sharing } from '../../image/sharing.js';
import { runCommand } from '../context.js';
import { BYTES_OPTION, sizeFormatter, table } from '../render.js';

export function renderUsage(rows: readonly ImageUsage[], exact?: boolean): string {
  if (rows.length === 0) return 'no images\n';
  const size = sizeFormatter(exact);
  // The column only where some image has compressed blocks: an uncompressed store's table stays in 80 columns.
  const compressed = rows.some((r) => r.compression.bytesBefore > 0);
  return table(
    rows.map((r) => ({
      name: r.name,
      kind: r.kind,
      referenced: size(r.referencedBytes),
      own: size(r.ownBytes),
      exclusive: size(r.exclusiveBytes),
      shared: size(r.sharedBytes),
      compressed: r.compression.bytesBefore === 0 ? '-' : `${size(r.compression.bytesBefore)}->${size(r.compression.bytesAfter)}`,
    })),
    [
      ['name', 'NAME'],
      ['kind', 'KIND'],
      ['referenced', 'REFERENCED'],
      ['own', 'OWN'],
      ['exclusive', 'EXCLUSIVE'],
      ['shared', 'SHARED'],
      ...(compressed ? [['compressed', 'COMPRESSED'] as [string, string]] : []),
    ],
  );
}

export function renderSharing(s: Sharing, exact?: boolean): string {
  const size = sizeFormatter(exact);
  const head = `${s.name} owns ${size(s.ownBytes)}`;
  if (s.sharedWith.length === 0) return `${head}; no other image holds any of it\n`;
  return `${head}; images holding some of it too:\n` + table(s.sharedWith.map((w) => ({ ...w, sharedBytes: size(w.sharedBytes) })), [
    ['name', 'NAME'],
    ['kind', 'KIND'],
    ['sharedBytes', 'SHARED'],
  ]);
}

export const duCommand = () =>
  new Command('du')
    .description('space per image: referenced (whole chain), own (its layer), exclusive (freed by removing it alone), shared (own, used elsewhere too), compressed (own blocks stored compressed: before->after)')
    .argument('[names...]', 'images (default: all)')
    .option(...BYTES_OPTION)
    .option('--sharing', "with one NAME: the images whose own layers hold NAME's own blocks too, most first")
    .action(async (names: string[], o: { bytes?: boolean; sharing?: boolean }, cmd: Command) => {
      if (o.sharing) {
        if (names.length !== 1) throw badInput('du --sharing takes exactly one image name');
        return runCommand(cmd, async (ctx) => sharingOf(await ctx.store(), names[0]), (s) => renderSharing(s, o.bytes));
      }
      return runCommand(cmd, async (ctx) => diskUsageOf(await ctx.store(), names), (rows) => renderUsage(rows, o.bytes));
    });
