#!/usr/bin/env node
/**
 * Entry point: parse, run, and turn an error into one line on stderr and an
 * exit status from its code. A stack trace only with --debug.
 */
import { CommanderError } from 'commander';
import { ERROR_CODES, StrataError } from '../errors.js';
import { reportError } from './failure.js';
import { buildProgram } from './program.js';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // `strata read … | head` closes the pipe early; that is not an error.
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and --version end here with status 0; usage errors are bad input.
    process.exitCode = e.exitCode === 0 ? 0 : ERROR_CODES.E_BAD_INPUT;
  } else if (e instanceof StrataError) {
    reportError(e.code, e.message, e.stack, typeof e.data.hint === 'string' ? e.data.hint : undefined);
    process.exitCode = e.exitStatus;
  } else {
    const err = e as Error;
    reportError('E_INTERNAL', `internal error: ${err?.message ?? String(e)}`, err?.stack);
    process.exitCode = ERROR_CODES.E_INTERNAL;
  }
}
