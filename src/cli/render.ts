/** Output: a command returns data; these turn it into text for people. */
import { humanBytes } from '../units.js';
import { printable } from '../untrusted.js';

export type Column = readonly [key: string, heading: string];

export function table(rows: readonly Record<string, string | number>[], columns: readonly Column[]): string {
  if (rows.length === 0) return '';
  // Cells may hold what others wrote (a manifest's host, a label): escaped, and measured as shown.
  const cell = (r: Record<string, string | number>, k: string) => printable(String(r[k] ?? ''));
  const widths = columns.map(([k, h]) => Math.max(h.length, ...rows.map((r) => cell(r, k).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns.map(([, h]) => h)), ...rows.map((r) => line(columns.map(([k]) => cell(r, k))))].join('\n') + '\n';
}

export function keyValues(pairs: readonly [string, string | number][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${printable(String(v))}`).join('\n') + '\n';
}

/** Sizes in tables: human units, or exact byte counts with -p/--bytes (as `zfs list -p`). */
export function sizeFormatter(exact: boolean | undefined): (n: number) => string {
  return exact ? (n) => String(n) : humanBytes;
}

/** The option that selects exact byte counts, for commands whose tables hold sizes. */
export const BYTES_OPTION = ['-p, --bytes', 'print exact byte counts instead of human units'] as const;

const two = (n: number) => String(n).padStart(2, '0');

/** A time for people: local, with its zone, "2026-12-01 15:04:05 +01:00" ("UTC" when the offset is zero). */
export function localTime(t: number | string | Date): string {
  const d = new Date(t);
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'UTC' : `${off > 0 ? '+' : '-'}${two(Math.floor(Math.abs(off) / 60))}:${two(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${zone}`;
}
