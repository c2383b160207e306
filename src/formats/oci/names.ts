/**
 * What a container image may name: the strings of a tar entry (its name, a
 * link's target, its xattr names) are checked here, once, before the tree
 * takes the entry. The limits are ext4's and Linux's (a name component of
 * 255 bytes, paths and symlink targets of 4,095, xattr names of 255), and
 * no string may hold a control character (C0, DEL or C1): none has a use in
 * a file name, and they are what turns a name into a command for the tools
 * that write the file system (debugfs-script.ts) or the terminal that shows
 * it. A refusal names the entry, escaped and shortened, and is E_BAD_INPUT.
 */
import { badInput } from '../../errors.js';
import type { TarHeader } from './tar.js';

export const NAME_MAX = 255;
export const PATH_MAX = 4095;
export const XATTR_NAME_MAX = 255;

const CONTROL = /\p{Cc}/u;
const WHITEOUT = '.wh.';

/** A string from an image as it may be printed: JSON-quoted, control characters escaped, long ones cut. */
export function shown(s: string, max = 120): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return JSON.stringify(cut).replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const bytes = (s: string) => Buffer.byteLength(s);

function control(s: string): string | undefined {
  const m = CONTROL.exec(s);
  return m ? `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}` : undefined;
}

/** The first thing wrong with a path (an entry's name, a hard link's target), or undefined. */
function pathProblem(p: string, what: string): string | undefined {
  const c = control(p);
  if (c) return `has a control character (${c}) in its ${what}`;
  // A whiteout's name is the name it removes behind `.wh.`: that is the one a file system held.
  const long = p
    .split('/')
    .map((part, i, all) => (i === all.length - 1 && part.startsWith(WHITEOUT) ? part.slice(WHITEOUT.length) : part))
    .find((part) => bytes(part) > NAME_MAX);
  if (long !== undefined) return `has a ${what} component of ${bytes(long)} bytes, more than ext4's ${NAME_MAX}`;
  if (bytes(p) > PATH_MAX) return `has a ${what} of ${bytes(p)} bytes, more than ext4's ${PATH_MAX}`;
  return undefined;
}

/** Refuses an entry whose name, link target or xattr names are not a file system's (see the module comment). */
export function checkEntryStrings(h: TarHeader, what: string): void {
  const refuse = (problem: string) => {
    throw badInput(`${what}: entry ${shown(h.name)} ${problem}; nothing imported`, { entry: h.name });
  };
  const named = pathProblem(h.name, 'name');
  if (named) refuse(named);
  if (h.type === 'hardlink') {
    const linked = pathProblem(h.linkname, 'hard link target');
    if (linked) refuse(linked);
  }
  if (h.type === 'symlink') {
    const c = control(h.linkname);
    if (c) refuse(`has a control character (${c}) in its symlink target`);
    if (bytes(h.linkname) > PATH_MAX) refuse(`has a symlink target of ${bytes(h.linkname)} bytes, more than ext4's ${PATH_MAX}`);
  }
  for (const k of h.xattrs.keys()) {
    const c = control(k);
    if (c) refuse(`has a control character (${c}) in its xattr name ${shown(k, 40)}`);
    if (k === '' || bytes(k) > XATTR_NAME_MAX) refuse(`has an xattr name of ${bytes(k)} bytes (ext4 takes 1 to ${XATTR_NAME_MAX})`);
  }
}
