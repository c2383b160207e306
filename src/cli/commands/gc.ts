import { Command } from 'commander';
import { collectGarbage } from '../../store/gc.js';
import { runCommand } from '../context.js';
import { longWork } from '../long-work.js';
import { humanBytes } from '../parse.js';

export const gcCommand = () =>
  new Command('gc').description('return the space of free slots to the file system').action(async (_o, cmd: Command) =>
    runCommand(
      cmd,
      async (ctx) => {
        const store = await ctx.store();
        // Rolled back: the rows are as before; space already cut or punched held only free slots.
        const kept = () => 'gc rolled back; free slots stay free, run gc again to reclaim the rest';
        return longWork(ctx, 'gc: returning free slots', kept, (onProgress) => collectGarbage(store, { onProgress }));
      },
      (r) =>
        `reclaimed ${humanBytes(r.reclaimedBytes)} (${r.reclaimedBytes} bytes): ${r.truncatedSlots} slot(s) cut from the end` +
        (r.punchSupported ? `, ${r.punchedSlots} free slot(s) punched` : ', punching holes is not supported here, so only the tail was reclaimed') +
        ` in ${r.ms} ms\n`,
    ),
  );
