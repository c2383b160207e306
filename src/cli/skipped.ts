/**
 * Objects a command's remote reads passed over (damaged or hostile, see
 * remote.ts): one warning line each on stderr, escaped, whatever the
 * output mode; --json results carry the same list as `skipped`.
 */
import type { Remote } from '../remote/remote.js';
import { printable } from '../untrusted.js';

export function warnSkipped(r: Remote): void {
  for (const s of r.skipped) process.stderr.write(`strata: warning: skipped ${s.object} ${s.key}: ${printable(s.message)}\n`);
}
