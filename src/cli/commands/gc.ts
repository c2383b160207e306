import { Command } from 'commander';
import { collectGarbage } from '../../store/gc.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';

export const gcCommand = () =>
  new Command('gc').description('return the space of free slots to the file system').action(async (_o, cmd: Command) =>
    runCommand(
      cmd,
      async (ctx) => collectGarbage(await ctx.store()),
      (r) =>
        `reclaimed ${humanBytes(r.reclaimedBytes)} (${r.reclaimedBytes} bytes): ${r.truncatedSlots} slot(s) cut from the end` +
        (r.punchSupported ? `, ${r.punchedSlots} free slot(s) punched` : ', punching holes is not supported here, so only the tail was reclaimed') +
        ` in ${r.elapsedMs} ms\n`,
    ),
  );
