/**
 * "Did you mean": the names a mistyped one was probably meant to be, as
 * commander suggests for commands and options. Case is the commonest slip
 * (`Debian` for `debian`), then a letter or two off.
 */

/** Edit distance (insert, delete, substitute, swap two neighbours), case-insensitive. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Up to three of `candidates` close to `name`, closest first; none when nothing is close. */
export function closeNames(name: string, candidates: readonly string[]): string[] {
  // A third of the name may be wrong, at least one letter: `vm1` finds `vm2`, `db` does not find `vm`.
  const limit = Math.max(1, Math.floor(name.length / 3));
  return candidates
    .filter((c) => c !== name)
    .map((c) => ({ c, d: distance(name, c) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, 3)
    .map((x) => x.c);
}
