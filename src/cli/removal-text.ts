/** The lines rm and prune share: what a removal freed, and counts of images by kind. */
import type { Reclaimed } from '../image/lifecycle.js';
import type { PrunedKind } from '../image/prune.js';
import { humanBytes } from './parse.js';

export const bytes = (n: number) => `${humanBytes(n)} (${n} bytes)`;

/** Where the freed space went, in one line. */
export function spaceLine(r: Pick<Reclaimed, 'freedBytes'> & Partial<Reclaimed>, none = 'freed 0 B: no stored block was used by these images alone'): string {
  if (r.freedBytes === 0) return `${none}\n`;
  const reclaimed = r.reclaimedBytes ?? 0;
  const pinned = r.pinnedBytes ?? 0;
  const kept = r.freedBytes - reclaimed - pinned;
  if (reclaimed === r.freedBytes) return `freed ${bytes(r.freedBytes)}, returned to the file system\n`;
  const parts = [`freed ${bytes(r.freedBytes)}`];
  if (reclaimed > 0) parts.push(`${humanBytes(reclaimed)} returned to the file system`);
  if (pinned > 0) parts.push(`${humanBytes(pinned)} still seen by a running reader (strata gc returns it once that reader ends)`);
  if (kept > 0) parts.push(`${humanBytes(kept)} kept in the data files for new writes (this file system cannot punch holes)`);
  return parts.join('; ') + '\n';
}

/** "2 container layers, 1 snapshot": counts by kind, for a line of text. */
export function prunedCounts(items: readonly { kind: string }[]): string {
  const order: PrunedKind[] = ['container layer', 'snapshot', 'hidden image'];
  return order
    .map((k) => [k, items.filter((i) => i.kind === k).length] as const)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}${n > 1 ? 's' : ''}`)
    .join(', ');
}
