import { Command } from 'commander';
import { runCommand } from '../context.js';

export const initCommand = () =>
  new Command('init').description('create the store (done on first use by every command)').action(async (_o, cmd: Command) =>
    runCommand(
      cmd,
      async (ctx) => {
        await ctx.store();
        return { store: ctx.storeDir };
      },
      (r) => `store ready at ${r.store}\n`,
    ),
  );
