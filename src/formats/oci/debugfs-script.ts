/**
 * The debugfs command language, and the only place strata writes it. A
 * debugfs script is code: whatever reaches a line runs with the importing
 * user's rights. What e2fsprogs 1.47 does with a script line (debugfs.c
 * source_file, lib/ss/execute_cmd.c, lib/ss/parse.c):
 *
 * - it reads lines with fgets into an 8,192-byte buffer (BUFSIZ), so a
 *   longer line is cut and each piece runs as a command of its own;
 * - it cuts a line at its first CR, and skips a line starting with `#`;
 * - a line starting with `!` (after blanks) goes to system(): a shell;
 * - ss_parse splits at blanks; inside double quotes every byte is literal
 *   except `"`, which is written `""`; there is no backslash escape, and a
 *   NUL ends the line;
 * - a name of the form `<N>` means inode N, and `ea_set` reads options
 *   (`-f FILE` reads a host file) anywhere among its arguments, as GNU
 *   getopt permutes them, until a `--`.
 *
 * So every line is built here from a verb of a fixed list and arguments of
 * fixed kinds: numbers and words we chose, file-system paths (always
 * absolute, never `<N>` or an option), names of files staged in the scratch
 * directory debugfs runs in, and quoted values after a `--`. A line that
 * holds a control character or would not fit debugfs's buffer is never
 * written: names with control characters are refused earlier, by the tree
 * (names.ts), so meeting one here is a bug (E_INTERNAL); a line that legal
 * but long names make too long is refused as E_UNSUPPORTED.
 */
import path from 'node:path';
import { StrataError, unsupported } from '../../errors.js';

/** debugfs reads a line with fgets(buf, 8192): at most 8,191 bytes, the newline included. */
export const DEBUGFS_LINE_MAX = 8190;

/** The verbs strata uses, and no other (no dump, no `!`). */
export const DEBUGFS_VERBS = ['cd', 'ea_rm', 'ea_set', 'ln', 'mkdir', 'mknod', 'rm', 'rmdir', 'sif', 'symlink', 'write'] as const;
export type DebugfsVerb = (typeof DEBUGFS_VERBS)[number];

declare const made: unique symbol;
/** One argument of a line, as one of the functions below made and checked it: no other code can make one. */
export type DebugfsArg = { readonly text: string; readonly [made]: true };
const arg = (text: string) => ({ text }) as DebugfsArg;

const CONTROL = /[\u0000-\u001f\u007f]/;

const internal = (msg: string) => new StrataError('E_INTERNAL', `debugfs script: ${msg}`);

function quote(s: string, what: string): string {
  if (CONTROL.test(s)) throw internal(`${what} ${JSON.stringify(s.slice(0, 64))} holds a control character (the tree should have refused it)`);
  return `"${s.replace(/"/g, '""')}"`;
}

/** A number, a mode, a time or a field name that strata wrote itself. */
export function word(s: string | number): DebugfsArg {
  const t = String(s);
  if (!/^[A-Za-z0-9_@+.-]+$/.test(t)) throw internal(`word ${JSON.stringify(t.slice(0, 64))} is not a plain word`);
  return arg(t);
}

/** A path in the file system being written: always absolute, so never read as `<N>` (an inode) or an option. */
export function fsPath(treePath: string): DebugfsArg {
  return arg(quote(`/${treePath}`, 'path'));
}

/** A file staged in the scratch directory debugfs runs in, named relative to it: no host path ever enters a script. */
export function staged(file: string, scratch: string): DebugfsArg {
  const name = path.basename(file);
  if (path.resolve(scratch, name) !== path.resolve(file) || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw internal(`${JSON.stringify(file)} is not a file staged in the scratch directory`);
  return arg(quote(name, 'staged file'));
}

/** A string from the image (a symlink target, a device node's name, an xattr name): quoted, and placed only where no option is read. */
export function value(s: string): DebugfsArg {
  return arg(quote(s, 'value'));
}

/** Checks one line against every rule above: the last guard before debugfs. */
export function checkLine(line: string): void {
  const verb = line.slice(0, line.indexOf(' '));
  if (!(DEBUGFS_VERBS as readonly string[]).includes(verb)) throw internal(`line starts with ${JSON.stringify(verb.slice(0, 32))}, not a verb strata uses`);
  if (CONTROL.test(line)) throw internal('a line holds a control character');
}

/** The lines of one script, in order. */
export class DebugfsScript {
  private readonly lines: string[] = [];

  /** Adds `verb args...`; `subject` (a tree path) names what the line is about if it has to be refused. */
  add(subject: string, verb: DebugfsVerb, ...args: (DebugfsArg | '--')[]): this {
    const line = [verb, ...args.map((a) => (a === '--' ? a : a.text))].join(' ');
    checkLine(line);
    const bytes = Buffer.byteLength(line);
    if (bytes > DEBUGFS_LINE_MAX) {
      throw unsupported(`/${subject.slice(0, 200)}: its path or link target is too long for the ext4 writer (debugfs takes command lines of at most ${DEBUGFS_LINE_MAX} bytes, this one is ${bytes} once quoted); nothing imported`, { path: subject, bytes });
    }
    this.lines.push(line);
    return this;
  }

  text(): string {
    return this.lines.map((l) => `${l}\n`).join('');
  }
}
