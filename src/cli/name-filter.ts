/**
 * `strata ls PATTERN...` and `strata tree NAME`: which images a command's
 * arguments pick. A pattern is a shell glob (`web*`, `vm?`, `db[12]`), quoted
 * so the shell leaves it alone; a plain name must exist, as `ls FILE` does.
 */
import { notFound } from '../errors.js';

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[' && glob.indexOf(']', i + 2) > 0) {
      const end = glob.indexOf(']', i + 2);
      const body = glob.slice(i + 1, end);
      re += `[${body.startsWith('!') ? '^' + body.slice(1) : body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const isGlob = (p: string) => /[*?[]/.test(p);

/**
 * The items whose names match any of `patterns` (all of them when none is
 * given), in their order. A plain name that is missing is E_NOT_FOUND; a glob
 * that matches nothing is not an error, as `zfs list -H | grep` finds nothing.
 */
export function pickByName<T extends { name: string }>(items: readonly T[], patterns: readonly string[]): T[] {
  if (patterns.length === 0) return [...items];
  for (const p of patterns) {
    if (!isGlob(p) && !items.some((i) => i.name === p)) throw notFound(`no image named ${p}`, { image: p });
  }
  const res = patterns.map((p) => (isGlob(p) ? globToRegExp(p) : undefined));
  return items.filter((i) => patterns.some((p, k) => (res[k] ? res[k].test(i.name) : i.name === p)));
}

/** The subtree of `forest` rooted at the image `name` (E_NOT_FOUND when no node has it). */
export function subtreeOf<T extends { name: string; children: T[] }>(forest: readonly T[], name: string): T {
  const stack = [...forest];
  for (let n = stack.pop(); n; n = stack.pop()) {
    if (n.name === name) return n;
    stack.push(...n.children);
  }
  throw notFound(`no image named ${name}`, { image: name });
}
