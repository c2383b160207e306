import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { closeNames } from '../suggest.js';

/**
 * `strata help [COMMAND]`. commander's own prints the whole program's help
 * for a command it does not know; this one says the name is unknown (exit 2)
 * and which command may have been meant.
 */
export const helpCommand = (program: Command) => () =>
  new Command('help')
    .description('display help for a command, or without one for strata')
    .argument('[command]', 'command to describe')
    .action((name: string | undefined) => {
      if (name === undefined) program.help();
      const sub = program.commands.find((c) => c.name() === name || c.aliases().includes(name!));
      if (!sub || sub.name() === 'help') {
        const near = closeNames(name!, program.commands.map((c) => c.name()));
        throw badInput(`unknown command '${name}'`, near.length > 0 ? { hint: `did you mean ${near.join(' or ')}?` } : {});
      }
      sub.help();
    });
