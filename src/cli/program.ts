/** Wires the commands into one commander program. Nothing here does work. */
import { Command } from 'commander';
import { STRATA_VERSION } from './version.js';
import { EXAMPLES } from './examples.js';
import { reportError, splitUsageError } from './failure.js';
import { cloneCommand } from './commands/clone.js';
import { createCommand } from './commands/create.js';
import { demoCommand } from './commands/demo.js';
import { exportCommand } from './commands/export.js';
import { freezeCommand } from './commands/freeze.js';
import { importCommand } from './commands/import.js';
import { infoCommand } from './commands/info.js';
import { initCommand } from './commands/init.js';
import { lsCommand } from './commands/ls.js';
import { readCommand } from './commands/read.js';
import { renameCommand } from './commands/rename.js';
import { rmCommand } from './commands/rm.js';
import { serveCommand } from './commands/serve.js';
import { snapshotCommand } from './commands/snapshot.js';
import { snapshotsCommand } from './commands/snapshots.js';
import { pruneCommand } from './commands/prune.js';
import { treeCommand } from './commands/tree.js';
import { writeCommand } from './commands/write.js';
import { checkCommand } from './commands/check.js';
import { commitCommand } from './commands/commit.js';
import { diffCommand } from './commands/diff.js';
import { duCommand } from './commands/du.js';
import { flattenCommand } from './commands/flatten.js';
import { gcCommand } from './commands/gc.js';
import { compressCommand } from './commands/compress.js';
import { mapCommand } from './commands/map.js';
import { rebaseCommand } from './commands/rebase.js';
import { resizeCommand } from './commands/resize.js';
import { rollbackCommand } from './commands/rollback.js';
import { statsCommand } from './commands/stats.js';
import { uiCommand } from './commands/ui.js';
import { pullCommand } from './commands/pull.js';
import { pushCommand } from './commands/push.js';
import { remoteCommand } from './commands/remote.js';
import { sendCommand } from './commands/send.js';
import { receiveCommand } from './commands/receive.js';
import { helpCommand } from './commands/help.js';


export function buildProgram(): Command {
  const program = new Command('strata')
    .description('copy-on-write disk images: layered, deduplicated, cloned instantly, served over NBD')
    .version(STRATA_VERSION, '-V, --version')
    .option('--store <dir>', 'store directory (default: $STRATA_STORE, else $XDG_DATA_HOME/strata)')
    .option('--json', 'print results (and errors, on stderr) as JSON')
    .option('--log-level <level>', 'pino log level on stderr: debug, info, warn, error', undefined)
    .option('--debug', 'print stack traces with errors')
    .exitOverride()
    .configureOutput({
      outputError: (str) => {
        const { message, hint } = splitUsageError(str.replace(/^error: /, '').trimEnd());
        reportError('E_BAD_INPUT', message, undefined, hint);
      },
    })
    .configureHelp({ showGlobalOptions: true })
    .helpCommand(false)
    .showSuggestionAfterError();
  const commands = [
    initCommand,
    createCommand,
    importCommand,
    exportCommand,
    cloneCommand,
    snapshotCommand,
    snapshotsCommand,
    rollbackCommand,
    freezeCommand,
    rmCommand,
    renameCommand,
    lsCommand,
    treeCommand,
    infoCommand,
    mapCommand,
    diffCommand,
    duCommand,
    statsCommand,
    flattenCommand,
    rebaseCommand,
    commitCommand,
    resizeCommand,
    checkCommand,
    gcCommand,
    pruneCommand,
    compressCommand,
    readCommand,
    writeCommand,
    serveCommand,
    remoteCommand,
    pushCommand,
    pullCommand,
    sendCommand,
    receiveCommand,
    uiCommand,
    demoCommand,
    helpCommand(program),
  ];
  for (const make of commands) {
    // Subcommands share the program's error output, exit override and help layout (global options shown).
    const cmd = make().copyInheritedSettings(program);
    // And theirs (strata remote add): made before their parent was wired, so given its settings here.
    for (const sub of cmd.commands) sub.copyInheritedSettings(cmd);
    const example = EXAMPLES[cmd.name()];
    if (example) cmd.addHelpText('after', `\nExample:\n  $ ${example}`);
    program.addCommand(cmd);
  }
  return program;
}
