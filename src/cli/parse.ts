/** Parsing of sizes and offsets from the command line: 4096, 64K, 10G, 1T, 1.5M, 2GiB. */
import { badInput } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50, E: 2 ** 60 };
const SIZE_RE = /^(\d+)(?:\.(\d+))?\s*([KMGTPE]?)(?:i?B)?$/i;

/** Parses a byte count; `what` names the option in the error ("size", "offset"). */
export function parseBytes(raw: string, what = 'size'): number {
  const m = SIZE_RE.exec(String(raw).trim());
  if (!m) throw badInput(`invalid ${what} ${JSON.stringify(raw)}: expected a number of bytes such as 4096, 64K, 10G or 1T`);
  const unit = UNITS[m[3].toUpperCase()];
  const whole = BigInt(m[1]) * BigInt(unit);
  const frac = m[2] ? Math.round(Number(`0.${m[2]}`) * unit) : 0;
  if (frac !== 0 && unit === 1) throw badInput(`invalid ${what} ${JSON.stringify(raw)}: a byte count has no fraction`);
  const total = whole + BigInt(frac);
  if (total >= 2n ** 63n) throw badInput(`invalid ${what} ${JSON.stringify(raw)}: over 2^63 bytes`);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw badInput(`invalid ${what} ${JSON.stringify(raw)}: over 2^53 bytes`);
  return Number(total);
}

/** Parses a whole count of things (requests per second, clients); `what` names the option, `unit` what it counts. */
export function parseCount(raw: string, what: string, unit: string): number {
  const t = String(raw).trim();
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t))) throw badInput(`invalid ${what} ${JSON.stringify(raw)}: expected a whole number of ${unit}`);
  return Number(t);
}

// One formatter for the CLI and the library's messages (src/units.ts).
export { humanBytes } from '../units.js';
