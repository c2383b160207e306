#!/usr/bin/env node
/**
 * Entry point: parse, run, and turn an error into one line on stderr and an
 * exit status from its code. A stack trace only with --debug.
 */
import { CommanderError } from 'commander';
import { ERROR_CODES, StrataError } from '../errors.js';
import { buildProgram } from './program.js';

function fail(message: string, status: number, stack?: string): void {
  process.stderr.write(`strata: ${message}\n`);
  if (stack && process.argv.includes('--debug')) process.stderr.write(stack + '\n');
  process.exitCode = status;
}

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
    fail(e.message, e.exitStatus, e.stack);
  } else {
    const err = e as Error;
    fail(`internal error: ${err?.message ?? String(e)}`, ERROR_CODES.E_INTERNAL, err?.stack);
  }
}
