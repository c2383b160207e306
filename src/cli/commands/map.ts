import { Command } from 'commander';
import { mapImage } from '../../image/inspect.js';
import { runCommand } from '../context.js';
import { table } from '../render.js';

export const mapCommand = () =>
  new Command('map')
    .description('extents of an image, like qemu-img map: start, length, data|zero|hole, and the layer that supplies them (its depth: 0 is the image itself)')
    .argument('<name>', 'image')
    .action(async (name: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => mapImage(await ctx.store(), name),
        (r) =>
          table(
            r.extents.map((e) => ({ start: e.offset, length: e.length, kind: e.kind, depth: e.depth ?? '-', layer: e.layer ?? '-' })),
            [
              ['start', 'START'],
              ['length', 'LENGTH'],
              ['kind', 'KIND'],
              ['depth', 'DEPTH'],
              ['layer', 'LAYER'],
            ],
          ) || 'empty image\n',
      ),
    );
