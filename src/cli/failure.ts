/**
 * How a failure reaches the user, on stderr: one line `strata: message`, or
 * with --json one JSON object `{"error": CODE, "message": ...}` that a
 * script can parse. The exit status is the code's either way. A hint ("did
 * you mean debian?") follows the message on its line, and in JSON has its own
 * field, so `message` stays the same whatever the store holds.
 */
import type { ErrorCode } from '../errors.js';
import { printable } from '../untrusted.js';

/** --json anywhere before a `--` (after it, it is an argument). Read from argv: a usage error comes before options are parsed. */
export function flagGiven(flag: string, argv: readonly string[] = process.argv): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes(flag);
}

export function reportError(code: ErrorCode, message: string, stack?: string, hint?: string): void {
  const debug = stack !== undefined && flagGiven('--debug');
  if (flagGiven('--json')) {
    process.stderr.write(JSON.stringify({ error: code, message, ...(hint ? { hint } : {}), ...(debug ? { stack } : {}) }) + '\n');
    return;
  }
  // A message may quote what a bucket or a file held: printed, never obeyed by the terminal.
  process.stderr.write(`strata: ${printable(message)}${hint ? `; ${printable(hint)}` : ''}\n`);
  if (debug) process.stderr.write(stack + '\n');
}

/** commander's usage error, "unknown command 'lss'\n(Did you mean ls?)", as a message and its hint. */
export function splitUsageError(text: string): { message: string; hint?: string } {
  const m = /^([\s\S]*?)\s*\(Did you mean (.+)\?\)\s*$/.exec(text);
  return m ? { message: m[1], hint: `did you mean ${m[2]}?` } : { message: text };
}
