import { Command } from 'commander';
import { collectGarbage } from '../../store/upkeep/index.js';
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
        (r.repack && r.repack.containers > 0 ? `; repacked ${r.repack.fragments} compressed block(s) from ${r.repack.containers} half-empty container(s) into ${r.repack.containers - (r.repack.slotsBefore - r.repack.slotsAfter)}` : '') +
        (r.repack && r.repack.busy > 0 ? `; ${r.repack.busy} compressed block(s) in use by open images left in place` : '') +
        ` in ${r.elapsedMs} ms\n`,
    ),
  );
